"""Model, map, image and torch-hook helpers below every other room.

Nothing here knows about CAM methods, resolvers or the engine; ``methods/``,
``resolvers/`` and ``apis/`` import from here, never the other way round.
"""

from .backbone_facts import (
    FAMILY_FACTS,
    AttentionFacts,
    BackboneFacts,
    find_facts,
    head_tokens,
)
from .capture import (
    GridCapture,
    HookSet,
    LayerCapture,
    eval_mode,
    frozen_parameters,
)
from .descriptors import (
    DESCRIPTOR_DIM,
    evidence_descriptors,
    split_descriptors,
)
from .image import CHANNEL_ORDERS, class_text, to_rgb
from .maps import combine_layers, normalize_maps, resize_maps, spatial_size
from .model import (
    ClassifierLogits,
    classifier_logits,
    expand_path,
    feature_root,
    get_module,
    nearest_listed,
    num_extra_tokens,
    takes_mode,
    unwrap_model,
)

__all__ = [
    'FAMILY_FACTS',
    'AttentionFacts',
    'BackboneFacts',
    'find_facts',
    'head_tokens',
    'DESCRIPTOR_DIM',
    'evidence_descriptors',
    'split_descriptors',
    'GridCapture',
    'HookSet',
    'LayerCapture',
    'eval_mode',
    'frozen_parameters',
    'CHANNEL_ORDERS',
    'class_text',
    'to_rgb',
    'combine_layers',
    'normalize_maps',
    'resize_maps',
    'spatial_size',
    'ClassifierLogits',
    'classifier_logits',
    'expand_path',
    'feature_root',
    'get_module',
    'nearest_listed',
    'num_extra_tokens',
    'takes_mode',
    'unwrap_model',
]
