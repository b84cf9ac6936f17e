"""Target-layer resolvers: the facts table (``family``) and timm metadata."""

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
from .family import FamilyResolver, expand_path
from .generic import GenericResolver
from .timm_model import TimmResolver

__all__ = [
    'BaseResolver',
    'ForwardTrace',
    'TracedModule',
    'find_resolver',
    'infer_layout',
    'patch_embed_name',
    'plausible_map',
    'resolve_targets',
    'FamilyResolver',
    'expand_path',
    'GenericResolver',
    'TimmResolver',
]
