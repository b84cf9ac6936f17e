"""Resolvers for plain (global-attention) vision transformers."""

from typing import Dict, NamedTuple, Optional

from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.model import feature_root, num_extra_tokens
from .base import BaseResolver, ForwardTrace
from .family import facts_layout, first_path_that_ran

__all__ = ['ClsTokenViTResolver', 'TimmViTResolver', 'ViTFacts', 'VIT_FACTS']


class ViTFacts(NamedTuple):
    """Where a plain ViT family's layers are (paths as in ``facts.py``).

    Args:
        cls_layer: Used when the head reads extra (cls/distillation) tokens:
            the input of the *last* attention. After it patch tokens never
            reach the class token (the MLP is per token), so any later
            layer gets exactly zero gradient: a blank map.
        patch_layer: Used when the head pools the patch tokens
            (``avg_featmap``/``featmap``): the final token norm, else the
            last block.
        grid: Module returning ``(tokens, (h, w))`` for this input, or
            ``None`` to solve the grid from the input size.
        extra: Extra tokens, for families without ``num_extra_tokens``;
            ``None`` reads the attribute.
    """

    cls_layer: str
    patch_layer: str = 'ln1|layers.-1'
    grid: Optional[str] = 'patch_embed'
    extra: Optional[int] = None


VIT_FACTS: Dict[str, ViTFacts] = {
    'VisionTransformer': ViTFacts('layers.-1.ln1'),  # also DeiT, MoCoV3ViT
    # DeiT3's block applies the same ``ln1`` before attention and before the
    # MLP (it runs twice; a hook sees the MLP call), so take the input of the
    # last block, i.e. the output of the one before it.
    'DeiT3': ViTFacts('layers.-2'),
    'BEiTViT': ViTFacts('layers.-1.ln1'),  # also EVA (BEiT-style ViT)
    'ViTEVA02': ViTFacts('layers.-1.norm1'),
    'T2T_ViT': ViTFacts(
        'encoder.-1.ln1', 'norm|encoder.-1', 'tokens_to_token'
    ),
    # TNT has a class token but no ``num_extra_tokens`` attribute.
    'TNT': ViTFacts('layers.-1.outer_block.norm_attn', 'norm', None, 1),
}


@TARGET_RESOLVERS.register_module()
class ClsTokenViTResolver(BaseResolver):
    """ViT-like backbones that classify from extra tokens or pooled patches.

    Which layer depends on what the head reads (``out_type``): see
    :class:`ViTFacts`. The number of extra tokens is read from the backbone
    (``num_extra_tokens``: 2 for distilled DeiT, 0 without a class token).
    """

    backbones = tuple(f'mmpretrain.{name}' for name in VIT_FACTS)

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        prefix, root = feature_root(model)
        facts = self._facts(root)
        layout = self._layout(model, prefix, root, facts)
        extra = layout.num_extra_tokens
        out_type = getattr(root, 'out_type', 'cls_token')
        if out_type in ('cls_token', 'raw') and extra > 0:
            paths = facts.cls_layer
            why = (
                "input of the last attention: the last block's patch "
                'outputs never reach the class token'
            )
        else:
            paths = facts.patch_layer
            why = 'final patch tokens: the head pools them'
        name = first_path_that_ran(model, prefix, paths, trace)
        if name is None:
            raise LayoutError(
                f'{type(root).__name__}: none of {paths!r} runs '
                'on this input; pass target_layers (layer names: '
                'model.named_modules()).'
            )
        return TargetSpec([name], layout, why)

    def layout(self, model, layers, trace) -> TokenLayout:
        """User layers: tokens with the backbone's extra tokens and grid."""
        prefix, root = feature_root(model)
        rec = trace.records.get(layers[0])
        if rec is None or len(rec.shape) != 3:
            return super().layout(model, layers, trace)
        return self._layout(model, prefix, root, self._facts(root))

    @staticmethod
    def _layout(
        model: nn.Module, prefix: str, root: nn.Module, facts: ViTFacts
    ) -> TokenLayout:
        return facts_layout(
            model, prefix, root, 'tokens', facts.extra, facts.grid
        )

    @staticmethod
    def _facts(root: nn.Module) -> ViTFacts:
        for cls in type(root).__mro__:
            if cls.__name__ in VIT_FACTS:
                return VIT_FACTS[cls.__name__]
        raise KeyError(type(root).__name__)


@TARGET_RESOLVERS.register_module()
class TimmViTResolver(BaseResolver):
    """timm's ``VisionTransformer`` (and subclasses) inside ``TimmClassifier``.

    Same rule as :class:`ClsTokenViTResolver`: with ``global_pool='token'``
    the head reads the class token, so the layer is the last block's
    ``norm1`` (input of the last attention); otherwise the final norm.
    timm's patch embedding returns only tokens, so the grid is solved from
    the input size; ``num_prefix_tokens`` counts class and register tokens.
    """

    backbones = ('timm.VisionTransformer',)

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        prefix, root = feature_root(model)
        extra = num_extra_tokens(root)
        if getattr(root, 'global_pool', 'token') == 'token' and extra > 0:
            paths, why = (
                'blocks.-1.norm1',
                ('input of the last attention: the class token is read'),
            )
        else:
            paths, why = 'norm|blocks.-1', 'final patch tokens: pooled'
        name = first_path_that_ran(model, prefix, paths, trace)
        if name is None:
            raise LayoutError(
                f'timm {type(root).__name__}: none of {paths!r} '
                'runs on this input; pass target_layers (layer names: '
                'model.named_modules()).'
            )
        return TargetSpec([name], TokenLayout('tokens', extra, None), why)
