"""One recorder per attention class: where its probabilities are, and where
each of their entries lives on the token grid.

An :class:`Adapter` is data: the module class it is for (found along the
MRO, so subclasses are covered), how the probabilities are tapped
(``attention_taps``) and at which sub-module, and a *geometry* function
that reads the module's forward arguments (``hw_shape``, an NHWC input, the
window and shift it uses) and returns the probabilities in the common
``(B, W, heads, Nq, Nk)`` layout with a
:class:`~mmcam_ext.methods.attention_geometry.BlockGeometry`. Adding an
attention class is adding one entry to :data:`ADAPTERS`.

Global attention over a ``(B, N, C)`` sequence does not know its grid; its
geometry function returns ``None`` for the space and the capture resolves
it (grid source, previous block, timm's patch embedding, or the input
size).
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..utils.model import nearest_listed
from .attention_geometry import (
    BlockGeometry,
    TokenSpace,
    outlook_geometry,
    query_subsampled_geometry,
    subsampled_geometry,
    window_geometry,
)

__all__ = ['Adapter', 'Local', 'ADAPTERS', 'find_adapter', 'adapter_names']


@dataclass
class Local:
    """One recorded attention in the common layout.

    Args:
        attn (torch.Tensor): ``(B, W, heads, Nq, Nk)``; a view of the
            recorded tensor (gradients reshape the same way).
        geometry (BlockGeometry, optional): Where its entries live; ``None``
            for global attention whose token grid the capture resolves.
            Defaults to None.
        class_queries (int): For ``geometry=None``: 0 if every token queries,
            else the number of leading (class) tokens that query. Defaults
            to 0.
    """

    attn: torch.Tensor
    geometry: Optional[BlockGeometry] = None
    class_queries: int = 0


# (module, forward args, forward kwargs, recorded tensor) -> Local
Geometry = Callable[[nn.Module, tuple, dict, torch.Tensor], Local]


@dataclass(frozen=True)
class Adapter:
    """How to record one attention class.

    Args:
        tap (str): ``'sdpa'``, ``'dropout'`` or ``'softmax'`` (see
            ``attention_taps``).
        at (str): Sub-module holding the probabilities, relative to the
            matched module (``''``: the module itself).
        geometry (Callable): ``(module, args, kwargs, recorded) -> Local``.
        unfuse (str, optional): Sub-module whose timm ``fused_attn`` flag is
            switched off for the capture. Defaults to None.
    """

    tap: str
    at: str
    geometry: Geometry
    unfuse: Optional[str] = None


def _arg(args: tuple, kwargs: dict, index: int, name: str):
    return args[index] if len(args) > index else kwargs[name]


def _pair(value) -> Tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _windows(attn: torch.Tensor, bsz: int, geom: BlockGeometry) -> Local:
    """``(B*W, heads, N, N)`` (batch-major windows) -> common layout."""
    n_win = geom.query_index.shape[0]
    if attn.shape[0] != bsz * n_win:
        raise ValueError(
            f'Recorded {attn.shape[0]} attention maps for {bsz} images and '
            f'{n_win} windows.'
        )
    return Local(attn.view(bsz, n_win, *attn.shape[1:]), geom)


# --- global attention -----------------------------------------------------
def _global(module, args, kwargs, attn) -> Local:
    """``(B, heads, N, N)`` over a sequence whose grid the capture finds."""
    return Local(attn.unsqueeze(1))


def _global_nhwc(module, args, kwargs, attn) -> Local:
    """timm VOLO's attention over an NHWC map ``(B, H, W, C)``."""
    x = _arg(args, kwargs, 0, 'x')
    space = TokenSpace((int(x.shape[1]), int(x.shape[2])))
    geom = subsampled_geometry(space.grid, space.grid, (1, 1), attn.device)
    return Local(attn.unsqueeze(1), geom)


def _class_attention(module, args, kwargs, attn) -> Local:
    """``(B, heads, 1, N)``: the class token queries every token."""
    return Local(attn.unsqueeze(1), None, class_queries=attn.shape[-2])


def _subsampled(module, args, kwargs, attn) -> Local:
    """Twins' global sub-sampled attention: keys pooled ``sr x sr``."""
    hw = _pair(_arg(args, kwargs, 1, 'hw_shape'))
    sr = int(getattr(module, 'sr_ratio', 1))
    key_hw = (hw[0] // sr, hw[1] // sr) if sr > 1 else hw
    geom = subsampled_geometry(hw, key_hw, (sr, sr), attn.device)
    return Local(attn.unsqueeze(1), geom)


# --- windows --------------------------------------------------------------
def _shift_window_msa(module, args, kwargs, attn) -> Local:
    """MMPretrain's ``ShiftWindowMSA`` (Swin, Swin V2, DaViT).

    Its shift is switched off when the map is exactly one window and small
    maps are not padded, as its forward does.
    """
    query = _arg(args, kwargs, 0, 'query')
    hw = _pair(_arg(args, kwargs, 1, 'hw_shape'))
    window = int(module.window_size)
    shift = int(module.shift_size)
    if min(hw) == window and not module.pad_small_map:
        shift = 0
    geom = window_geometry(
        hw, (window, window), (shift, shift), True, attn.device
    )
    return _windows(attn, query.shape[0], geom)


def _timm_swin_block(module, args, kwargs, attn) -> Local:
    """timm's ``SwinTransformerBlock`` on ``(B, H, W, C)``: roll, then pad."""
    x = _arg(args, kwargs, 0, 'x')
    hw = (int(x.shape[1]), int(x.shape[2]))
    geom = window_geometry(
        hw,
        _pair(module.window_size),
        _pair(module.shift_size),
        False,
        attn.device,
    )
    return _windows(attn, x.shape[0], geom)


def _locally_grouped(module, args, kwargs, attn) -> Local:
    """Twins' locally-grouped attention: ``(B, W, heads, N, N)``, padded."""
    hw = _pair(_arg(args, kwargs, 1, 'hw_shape'))
    window = int(module.window_size)
    geom = window_geometry(hw, (window, window), (0, 0), True, attn.device)
    return Local(attn, geom)


def _mixmim_block(module, args, kwargs, attn) -> Local:
    """MixMIM's block: windows over its fixed input resolution, no shift."""
    x = _arg(args, kwargs, 0, 'x')
    hw = _pair(module.input_resolution)
    window = int(module.window_size)
    geom = window_geometry(hw, (window, window), (0, 0), True, attn.device)
    return _windows(attn, x.shape[0], geom)


def _tinyvit_block(module, args, kwargs, attn) -> Local:
    """TinyViT's block: one window if the map is one, else padded windows."""
    x = _arg(args, kwargs, 0, 'x')
    hw = _pair(module.img_size)
    window = int(module.window_size)
    geom = window_geometry(hw, (window, window), (0, 0), True, attn.device)
    if hw == (window, window):
        return Local(attn.unsqueeze(1), geom)
    return _windows(attn, x.shape[0], geom)


def _sam_layer(module, args, kwargs, attn) -> Local:
    """ViT-SAM's layer on ``(B, H, W, C)``: padded windows or global.

    Its attention folds the heads into the batch: ``(B*W*heads, N, N)``.
    """
    x = _arg(args, kwargs, 0, 'x')
    hw = (int(x.shape[1]), int(x.shape[2]))
    window = int(module.window_size)
    heads = int(module.attn.num_heads)
    attn = attn.view(-1, heads, *attn.shape[-2:])
    if window <= 0:
        geom = subsampled_geometry(hw, hw, (1, 1), attn.device)
        return Local(attn.unsqueeze(1), geom)
    geom = window_geometry(hw, (window, window), (0, 0), True, attn.device)
    return _windows(attn, x.shape[0], geom)


def _outlook(module, args, kwargs, attn) -> Local:
    """timm VOLO's outlook attention: ``(B, heads, W, k*k, k*k)``."""
    x = _arg(args, kwargs, 0, 'x')
    hw = (int(x.shape[1]), int(x.shape[2]))
    geom = outlook_geometry(
        hw,
        int(module.kernel_size),
        int(module.padding),
        int(module.stride),
        attn.device,
    )
    return Local(attn.transpose(1, 2), geom)


def _levit_subsample(module, args, kwargs, attn) -> Local:
    """LeViT's attention subsampling: strided queries, no residual."""
    res, sub = int(module.resolution), int(module.sub_resolution)
    geom = query_subsampled_geometry((res, res), (sub, sub), attn.device)
    return Local(attn.unsqueeze(1), geom)


_MM = 'mmpretrain.models'
_TIMM = 'timm'
# Qualified class name -> how to record it. Order does not matter: the MRO
# walk of the module's class finds the most specific entry.
ADAPTERS: Dict[str, Adapter] = {
    # MMPretrain, global
    f'{_MM}.utils.attention.MultiheadAttention': Adapter('sdpa', '', _global),
    f'{_MM}.utils.attention.BEiTAttention': Adapter(
        'dropout', 'attn_drop', _global
    ),
    f'{_MM}.backbones.vit_eva02.AttentionWithRoPE': Adapter(
        'dropout', 'attn_drop', _global
    ),
    f'{_MM}.backbones.hivit.Attention': Adapter(
        'dropout', 'attn_drop', _global
    ),
    f'{_MM}.backbones.efficientformer.AttentionWithBias': Adapter(
        'softmax', '', _global
    ),
    f'{_MM}.backbones.levit.Attention': Adapter('softmax', '', _global),
    f'{_MM}.backbones.levit.AttentionSubsample': Adapter(
        'softmax', '', _levit_subsample
    ),
    f'{_MM}.backbones.xcit.ClassAttntion': Adapter(
        'dropout', 'attn_drop', _class_attention
    ),
    # MMPretrain, windowed / sub-sampled
    f'{_MM}.backbones.twins.GlobalSubsampledAttention': Adapter(
        'sdpa', '', _subsampled
    ),
    f'{_MM}.backbones.twins.LocallyGroupedSelfAttention': Adapter(
        'dropout', 'attn_drop', _locally_grouped
    ),
    f'{_MM}.utils.attention.ShiftWindowMSA': Adapter(
        'dropout', 'w_msa.attn_drop', _shift_window_msa
    ),
    f'{_MM}.backbones.mixmim.MixMIMBlock': Adapter(
        'dropout', 'attn.attn_drop', _mixmim_block
    ),
    f'{_MM}.backbones.tinyvit.TinyViTBlock': Adapter(
        'softmax', 'attn', _tinyvit_block
    ),
    f'{_MM}.backbones.vit_sam.TransformerEncoderLayer': Adapter(
        'softmax', 'attn', _sam_layer
    ),
    # timm
    f'{_TIMM}.layers.attention.Attention': Adapter(
        'dropout', 'attn_drop', _global, unfuse=''
    ),
    f'{_TIMM}.models.swin_transformer.SwinTransformerBlock': Adapter(
        'dropout', 'attn.attn_drop', _timm_swin_block, unfuse='attn'
    ),
    f'{_TIMM}.models.volo.OutlookAttention': Adapter(
        'dropout', 'attn_drop', _outlook
    ),
    f'{_TIMM}.models.volo.Attention': Adapter(
        'dropout', 'attn_drop', _global_nhwc, unfuse=''
    ),
    f'{_TIMM}.models.volo.ClassAttention': Adapter(
        'dropout', 'attn_drop', _class_attention
    ),
}


def _qualified(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def find_adapter(module: nn.Module) -> Optional[Adapter]:
    """The adapter of this module's class or its nearest listed parent.

    Args:
        module (nn.Module): A candidate attention module.

    Returns:
        Adapter | None: Its adapter, or ``None`` for other modules.
    """
    return nearest_listed(module, ADAPTERS, key=_qualified)


def adapter_names() -> Sequence[str]:
    """Short names of the attention classes that can be recorded.

    Returns:
        list[str]: Class names, for error messages.
    """
    return sorted({name.rsplit('.', 1)[-1] for name in ADAPTERS})
