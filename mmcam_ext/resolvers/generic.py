"""Fallback resolver for backbones no family resolver claims."""

from typing import Optional

from mmengine.logging import print_log
from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout, solve_grid
from ..utils.model import feature_root, num_extra_tokens
from .base import BaseResolver, ForwardTrace, patch_embed_name

__all__ = ['GenericResolver']


@TARGET_RESOLVERS.register_module()
class GenericResolver(BaseResolver):
    """The deepest map or token sequence that runs under the feature extractor.

    Candidates are outputs of modules that ran once with the input's batch
    size: 4-D maps whose spatial size follows the input (so no window
    attention, channels-last or pooled 1x1 outputs), and 3-D token sequences
    that fold onto a grid of this input after dropping the backbone's
    ``num_extra_tokens``. Of the last of each kind, the one that completes
    later in the forward pass wins: a CNN's last stage, or a transformer's
    final tokens rather than its patch-embedding convolution.
    """

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        """The later of the last spatial map and the last token sequence.

        Args:
            model (nn.Module): The classifier.
            trace (ForwardTrace): Its traced forward pass on the input.

        Returns:
            TargetSpec: The layer, its layout and the reason (the choice is
            also logged).

        Raises:
            LayoutError: No spatial or token layer ran under the feature
                extractor.
        """
        prefix, root = feature_root(model)
        extra = num_extra_tokens(root)
        spatial = trace.last_spatial(prefix, ndim=4)
        tokens = self._last_tokens(trace, prefix, extra)
        order = {n: trace.records[n].order for n in (spatial, tokens) if n}
        if not order:
            raise LayoutError(
                f'Found no spatial or token layer under {prefix!r} of '
                f'{type(model).__name__}; pass target_layers (layer names: '
                'model.named_modules()).'
            )
        name = max(order, key=order.__getitem__)
        if name == spatial:
            spec = TargetSpec(
                [name],
                TokenLayout('nchw'),
                'last spatial map that runs (generic fallback)',
            )
        else:
            spec = TargetSpec(
                [name],
                TokenLayout('tokens', extra, patch_embed_name(model)),
                'last token sequence that runs (generic fallback)',
            )
        print_log(
            f'[mmcam_ext] No resolver for {type(root).__name__}; '
            f'generic fallback chose {spec.layers}. Pass '
            'target_layers to choose another.',
            logger='current',
        )
        return spec

    @staticmethod
    def _last_tokens(
        trace: ForwardTrace, prefix: str, extra: int
    ) -> Optional[str]:
        best = None
        for rec in trace.ordered(prefix):
            if (
                rec.calls != 1
                or len(rec.shape) != 3
                or rec.name == prefix
                or rec.shape[0] != trace.batch
            ):
                continue
            try:
                solve_grid(rec.shape[1] - extra, trace.input_hw)
            except ValueError:
                continue
            best = rec.name
        return best
