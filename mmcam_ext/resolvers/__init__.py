"""Target-layer resolvers, one per backbone family (see ``base``)."""
from .base import (BaseResolver, ForwardTrace, classifier_logits, feature_root,
                   find_resolver, get_module, resolve_targets)
from .generic import GenericResolver
from .vit import ClsTokenViTResolver

__all__ = [
    'BaseResolver', 'ForwardTrace', 'classifier_logits', 'feature_root',
    'find_resolver', 'get_module', 'resolve_targets', 'GenericResolver',
    'ClsTokenViTResolver'
]
