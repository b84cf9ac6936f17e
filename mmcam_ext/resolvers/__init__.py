"""Target-layer resolvers, one per backbone family (``facts``, ``vit``)."""
from .base import (BaseResolver, ClassifierLogits, ForwardTrace,
                   classifier_logits, feature_root, find_resolver, get_module,
                   plausible_map, resolve_targets)
from .facts import FAMILY_FACTS, Facts, find_facts
from .family import FamilyResolver, expand_path
from .generic import GenericResolver
from .vit import VIT_FACTS, ClsTokenViTResolver, TimmViTResolver, ViTFacts

__all__ = [
    'BaseResolver', 'ClassifierLogits', 'ForwardTrace', 'classifier_logits',
    'feature_root',
    'find_resolver', 'get_module', 'plausible_map', 'resolve_targets',
    'FAMILY_FACTS', 'Facts', 'find_facts', 'FamilyResolver', 'expand_path',
    'GenericResolver', 'VIT_FACTS', 'ClsTokenViTResolver', 'TimmViTResolver',
    'ViTFacts'
]
