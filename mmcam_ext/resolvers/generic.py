"""Fallback resolver for backbones no family resolver claims."""
from mmengine.logging import print_log
from torch import nn

from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from .base import BaseResolver, ForwardTrace, feature_root, patch_embed_name

__all__ = ['GenericResolver']


@TARGET_RESOLVERS.register_module()
class GenericResolver(BaseResolver):
    """Last spatial map that runs under the feature extractor.

    The last 4-D module (by completion order, called once, larger than 1x1)
    is the output of the last stage: the deepest map that still has a
    spatial layout. Without any 4-D map, the last token sequence is used with
    the backbone's ``num_extra_tokens``.
    """

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        prefix, root = feature_root(model)
        name = trace.last_spatial(prefix, ndim=4)
        if name is not None:
            spec = TargetSpec([name], TokenLayout('nchw'),
                              'last spatial map that runs (generic fallback)')
        else:
            name = trace.last_spatial(prefix, ndim=3)
            if name is None:
                raise ValueError(
                    f'Found no spatial or token layer under {prefix!r} of '
                    f'{type(model).__name__}; pass --target-layers.')
            extra = int(getattr(root, 'num_extra_tokens', 0) or 0)
            spec = TargetSpec([name],
                              TokenLayout('tokens', extra,
                                          patch_embed_name(model)),
                              'last token sequence that runs (generic '
                              'fallback)')
        print_log(f'[mmcam_ext] No resolver for {type(root).__name__}; '
                  f'generic fallback chose {spec.layers}.', logger='current')
        return spec
