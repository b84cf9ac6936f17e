"""timm models inside MMPretrain's ``TimmClassifier``, from timm's metadata.

timm models declare what the resolver needs: ``feature_info`` (the module
of each feature stage), ``num_prefix_tokens`` (class, distillation and
register tokens) and ``global_pool`` (what the head reads). The row built
from them (:func:`~mmcam_ext.utils.backbone_facts.timm_facts`) is read here;
no list of timm class names is kept.
"""

from typing import Optional, Tuple

from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.backbone_facts import BackboneFacts, timm_facts
from ..utils.model import feature_root
from .base import BaseResolver, ForwardTrace, TracedModule, plausible_map
from .family import default_paths, first_path_that_ran
from .generic import GenericResolver

__all__ = ['TimmResolver', 'traced_layout']


def traced_layout(
    shape: Tuple[int, ...], input_hw: Tuple[int, int]
) -> Optional[str]:
    """``'nchw'``, ``'nhwc'`` or ``'tokens'`` from a traced output shape.

    Args:
        shape (tuple[int]): The output shape.
        input_hw (tuple[int, int]): Height and width of the input.

    Returns:
        str | None: The layout kind, or ``None`` when it is no map.
    """
    if len(shape) == 3:
        return 'tokens'
    if len(shape) != 4:
        return None
    if plausible_map(shape, input_hw):
        return 'nchw'
    if plausible_map((shape[0], shape[3], shape[1], shape[2]), input_hw):
        return 'nhwc'
    return None


def _spatial(shape: Tuple[int, ...], kind: Optional[str]):
    return shape[2:] if kind == 'nchw' else shape[1:3]


@TARGET_RESOLVERS.register_module()
class TimmResolver(BaseResolver):
    """Any timm model (``TimmClassifier.model``), from its own metadata.

    * Token models (``num_prefix_tokens``: ViT, DeiT, register tokens): with
      ``global_pool='token'`` the head reads the class token, so the layer
      is the input of the last attention (``blocks.-1.norm1``); otherwise
      the final norm. The grid is solved from the input size.
    * Other models: the last ``feature_info`` module (``layer4``,
      ``layers.3``, ``network.4``), or the last later module whose output
      has the same layout and spatial size (EfficientNet's ``conv_head``/
      ``bn2``, Swin's final ``norm``); NCHW or NHWC as traced.
    * Without metadata: the generic fallback.
    """

    backbones = ('timm.*',)

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        """Choose the layer from timm's metadata.

        Args:
            model (nn.Module): A ``TimmClassifier``.
            trace (ForwardTrace): Its traced forward pass on the input.

        Returns:
            TargetSpec: The layer, its layout and the reason.
        """
        prefix, root = feature_root(model)
        facts = timm_facts(root)
        if facts is None:
            return GenericResolver().resolve(model, trace)
        if facts.kind == 'tokens':
            return self._tokens(model, prefix, root, facts, trace)
        first = first_path_that_ran(model, prefix, str(facts.layer), trace)
        rec = trace.records.get(first) if first else None
        kind = traced_layout(rec.shape, trace.input_hw) if rec else None
        if rec is None or kind not in ('nchw', 'nhwc'):
            return GenericResolver().resolve(model, trace)
        name = self._last_same_map(trace, prefix, rec, kind).name
        return TargetSpec([name], TokenLayout(kind), facts.why)

    @staticmethod
    def _tokens(
        model: nn.Module,
        prefix: str,
        root: nn.Module,
        facts: BackboneFacts,
        trace: ForwardTrace,
    ) -> TargetSpec:
        extra = int(facts.extra or 0)
        paths, why = default_paths(root, facts, extra)
        name = first_path_that_ran(model, prefix, str(paths), trace)
        if name is None:
            raise LayoutError(
                f'timm {type(root).__name__}: none of {paths!r} runs on '
                'this input; pass target_layers (layer names: '
                'model.named_modules()).'
            )
        return TargetSpec([name], TokenLayout('tokens', extra, None), why)

    @staticmethod
    def _last_same_map(
        trace: ForwardTrace, prefix: str, rec: TracedModule, kind: str
    ) -> TracedModule:
        best = rec
        for later in trace.ordered(prefix):
            if (
                later.order > rec.order
                and later.calls == 1
                and later.shape[:1] == rec.shape[:1]
                and traced_layout(later.shape, trace.input_hw) == kind
                and _spatial(later.shape, kind) == _spatial(rec.shape, kind)
            ):
                best = later
        return best

    def layout(
        self, model: nn.Module, layers, trace: ForwardTrace
    ) -> TokenLayout:
        """Layout of user-chosen layers, read from their traced outputs.

        Args:
            model (nn.Module): A ``TimmClassifier``.
            layers (Sequence[str]): The user's layer names.
            trace (ForwardTrace): The traced forward pass.

        Returns:
            TokenLayout: The layout of ``layers[0]``.
        """
        rec = trace.records.get(layers[0])
        kind = traced_layout(rec.shape, trace.input_hw) if rec else None
        if kind in ('nchw', 'nhwc'):
            return TokenLayout(str(kind))
        return super().layout(model, layers, trace)
