"""Target-layer resolvers, one per backbone family (``facts``, ``vit``)."""

from .base import (
    BaseResolver,
    ForwardTrace,
    TracedModule,
    find_resolver,
    infer_layout,
    patch_embed_name,
    plausible_map,
    resolve_targets,
)
from .facts import FAMILY_FACTS, Facts, find_facts
from .family import FamilyResolver, expand_path
from .generic import GenericResolver
from .vit import VIT_FACTS, ClsTokenViTResolver, TimmViTResolver, ViTFacts

__all__ = [
    'BaseResolver',
    'ForwardTrace',
    'TracedModule',
    'find_resolver',
    'infer_layout',
    'patch_embed_name',
    'plausible_map',
    'resolve_targets',
    'FAMILY_FACTS',
    'Facts',
    'find_facts',
    'FamilyResolver',
    'expand_path',
    'GenericResolver',
    'VIT_FACTS',
    'ClsTokenViTResolver',
    'TimmViTResolver',
    'ViTFacts',
]
