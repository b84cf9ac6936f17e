"""Resolvers for plain (global-attention) vision transformers."""
from typing import Dict, Tuple

from torch import nn

from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from .base import BaseResolver, ForwardTrace, feature_root, patch_embed_name

__all__ = ['ClsTokenViTResolver']

# Facts per family: (attribute holding the blocks, attribute of a block's
# norm that feeds its attention).
VIT_FACTS: Dict[str, Tuple[str, str]] = {
    'VisionTransformer': ('layers', 'ln1'),
}


@TARGET_RESOLVERS.register_module()
class ClsTokenViTResolver(BaseResolver):
    """ViT-like backbones that classify from extra (cls/dist) tokens.

    When the class scores come from extra tokens, the default layer is the
    norm feeding the *last* attention: after that attention patch tokens
    never reach the class token again (the MLP is per token), so the last
    block's patch outputs get exactly zero gradient — a blank map.
    With ``out_type`` ``avg_featmap``/``featmap`` the patch tokens feed the
    head directly and the final norm is the natural layer.
    """
    backbones = tuple(VIT_FACTS)

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        prefix, root = feature_root(model)
        blocks_attr, norm_attr = self._facts(root)
        blocks = getattr(root, blocks_attr)
        extra = int(getattr(root, 'num_extra_tokens', 0) or 0)
        layout = TokenLayout('tokens', extra, patch_embed_name(model))
        out_type = getattr(root, 'out_type', 'cls_token')
        if out_type in ('cls_token', 'raw') and extra > 0:
            name = f'{prefix}.{blocks_attr}.{len(blocks) - 1}.{norm_attr}'
            return TargetSpec([name], layout,
                              'norm before the last attention: the last '
                              "block's patch outputs never reach the class "
                              'token')
        final = f'{prefix}.ln1'
        if not trace.ran(final):
            final = f'{prefix}.{blocks_attr}.{len(blocks) - 1}'
        return TargetSpec([final], layout,
                          'final token norm: patch tokens feed the head')

    @staticmethod
    def _facts(root: nn.Module) -> Tuple[str, str]:
        for cls in type(root).__mro__:
            if cls.__name__ in VIT_FACTS:
                return VIT_FACTS[cls.__name__]
        raise KeyError(type(root).__name__)
