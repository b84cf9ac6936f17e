"""Record the attention probabilities of MMPretrain ViTs for one explanation.

MMPretrain's ``MultiheadAttention`` (ViT, DeiT, DeiT3, T2T-ViT, RevViT) calls
``F.scaled_dot_product_attention``: the probabilities are never materialised,
so no hook can see them. For the duration of an :class:`AttentionCapture`
the function each such module calls is replaced by an explicit
``softmax(Q Kᵀ · scale) @ V`` that records the probabilities it computes.
Attention classes that already compute explicit probabilities and pass them
through an ``nn.Dropout`` (BEiT with its relative position bias, EVA-02 with
rotary embeddings) are tapped at that dropout instead, which leaves their
computation untouched. Everything is restored in ``__exit__``, also when the
body raises, and no hook or attribute is left on the model.

The recorded tensors stay in the autograd graph, so a method gets
``∂y/∂A`` with ``torch.autograd.grad(score, capture.collected())`` without
``retain_grad`` or tensor hooks.

Which blocks to read is *data* per backbone family (:data:`ATTENTION_FACTS`);
backbones whose attention is windowed or hierarchical are listed with the
reason in :data:`LOCAL_ATTENTION` and get an error that points to the
gradient methods.
"""

import functools
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.capture import GridCapture
from ..utils.model import feature_root, num_extra_tokens

__all__ = [
    'AttentionFacts',
    'ATTENTION_FACTS',
    'LOCAL_ATTENTION',
    'AttentionCapture',
    'attention_facts',
    'GRADIENT_METHODS_HINT',
]

Restore = Callable[[], None]
Record = Callable[[torch.Tensor], None]

GRADIENT_METHODS_HINT = (
    'Use a gradient method on a layer instead: gradcam (or gradcam++, '
    'hirescam, layercam).'
)


@dataclass(frozen=True)
class AttentionFacts:
    """Where a global-attention backbone keeps what the methods need.

    Args:
        blocks: Attribute of the backbone holding the encoder blocks, in
            execution order.
        attn: Attribute of a block holding its attention module.
        grid_source: Attribute of the backbone whose forward output carries
            the patch grid ``(h, w)`` of this input.
    """

    blocks: str
    attn: str = 'attn'
    grid_source: str = 'patch_embed'


# Global (token-to-token) attention backbones, looked up along the MRO, so
# DistilledVisionTransformer, DeiT3, ViTEVA02, MAEViT... use the ViT entry.
ATTENTION_FACTS: Dict[str, AttentionFacts] = {
    'VisionTransformer': AttentionFacts('layers'),
    'BEiTViT': AttentionFacts('layers'),
    # The encoder only: the T2T module's own attention runs on the
    # unfolded soft-split tokens, before the cls token and patch grid exist.
    'T2T_ViT': AttentionFacts('encoder', grid_source='tokens_to_token'),
    'RevVisionTransformer': AttentionFacts('layers'),
}

# Backbones with attention that rollout-type methods cannot follow, and why.
_WINDOWED = (
    'attention runs inside local windows and tokens are merged '
    'between stages, so no single token-to-token matrix links the '
    'output to every patch'
)
LOCAL_ATTENTION: Dict[str, str] = {
    'SwinTransformer': _WINDOWED,
    'SwinTransformerV2': _WINDOWED,
    'MixMIMTransformer': _WINDOWED,
    'TinyViT': _WINDOWED,
    'DaViT': _WINDOWED + ' (and half of its blocks attend over channels)',
    'ViTSAM': _WINDOWED + ' (most of its blocks are windowed)',
    'PCPVT': 'Twins uses spatially reduced keys/values and stages that '
    'change the token grid',
    'SVT': 'Twins-SVT alternates locally-grouped and sub-sampled attention '
    'over stages that change the token grid',
    'MViT': 'pooling attention changes the token grid between stages',
    'LeViT': 'attention stages subsample the tokens',
    'HiViT': 'its early stages have no attention and its main stage reports '
    'no patch grid',
    'EfficientFormer': 'only its last stage has attention; earlier stages '
    'mix tokens with convolutions',
    'XCiT': 'its attention is over channels (cross-covariance), not tokens',
    'Conformer': 'its transformer branch is fused with a CNN branch that '
    'attention does not describe',
    'TNT': 'it nests pixel-level attention inside patch tokens',
    'EdgeNeXt': 'its attention is over channels (transposed attention)',
    'MobileViT': 'it attends within unfolded patches between conv stages',
}


def attention_facts(backbone: nn.Module) -> AttentionFacts:
    """Facts for this backbone (MRO walk); clear errors when unsupported."""
    for cls in type(backbone).__mro__:
        name = cls.__name__
        if name in LOCAL_ATTENTION:
            raise ValueError(
                f'Attention methods (attention_rollout, grad_attention, '
                f'attention_relevance) need global token-to-token attention, '
                f'but {name}: {LOCAL_ATTENTION[name]}. '
                f'{GRADIENT_METHODS_HINT}'
            )
        if name in ATTENTION_FACTS:
            return ATTENTION_FACTS[name]
    raise ValueError(
        f'Attention methods do not know the backbone '
        f'{type(backbone).__name__}. Supported families: '
        f'{", ".join(ATTENTION_FACTS)} and their subclasses. '
        f'{GRADIENT_METHODS_HINT}'
    )


# ----------------------------------------------------------------------
# How to record each attention class.
def _sdpa_scale(original: Callable) -> Callable[[torch.Tensor], float]:
    """The logit multiplier ``original`` applies, as a function of ``q``.

    ``F.scaled_dot_product_attention`` multiplies by ``d ** -0.5``.
    MMPretrain's ``scaled_dot_product_attention_pyimpl`` (used when
    ``qk_scale`` is set) *divides* by its ``scale`` argument, which the
    module sets to ``d ** -0.5``; that is reproduced as is, so outputs stay
    equal.
    """
    from mmpretrain.models.utils.attention import (
        scaled_dot_product_attention_pyimpl as pyimpl,
    )

    if original is F.scaled_dot_product_attention:
        return lambda q: q.size(-1) ** -0.5
    func, kwargs = original, {}
    if isinstance(original, functools.partial):
        func, kwargs = original.func, original.keywords
    if func is pyimpl:
        return lambda q: 1.0 / (kwargs.get('scale') or math.sqrt(q.size(-1)))
    raise TypeError(
        f'MultiheadAttention calls an unknown attention function '
        f'{original!r}; cannot reproduce it explicitly.'
    )


def _swap_sdpa(module: nn.Module, record: Record) -> Restore:
    """Replace ``module.scaled_dot_product_attention`` by an explicit one."""
    original = module.__dict__.get('scaled_dot_product_attention')
    if original is None:
        raise TypeError(
            f'{type(module).__name__} has no instance attribute '
            'scaled_dot_product_attention to swap.'
        )
    scale_of = _sdpa_scale(original)

    def explicit(query, key, value, attn_mask=None, dropout_p=0.0, **kwargs):
        if attn_mask is not None or kwargs.get('is_causal'):
            raise NotImplementedError(
                'Attention masks are not supported by the attention capture.'
            )
        logits = (query @ key.transpose(-2, -1)) * scale_of(query)
        attn = logits.softmax(dim=-1)
        record(attn)
        if dropout_p > 0:
            attn = torch.dropout(attn, dropout_p, True)
        return attn @ value

    # torch annotates Module.__setattr__ for tensors and modules only; any
    # other value is stored as a plain attribute, as intended here.
    module.scaled_dot_product_attention = explicit  # type: ignore[assignment]

    def restore() -> None:
        module.scaled_dot_product_attention = original

    return restore


def _tap_dropout(module: nn.Module, record: Record) -> Restore:
    """Record the explicit probabilities an ``attn_drop`` module receives."""
    drop = getattr(module, 'attn_drop', None)
    if not isinstance(drop, nn.Dropout):
        raise TypeError(
            f'{type(module).__name__}.attn_drop is not an '
            'nn.Dropout; cannot tap its attention.'
        )
    handle = drop.register_forward_hook(lambda mod, args, out: record(out))
    return handle.remove


def _adapters() -> List[Tuple[type, Callable[[nn.Module, Record], Restore]]]:
    from mmpretrain.models.backbones.vit_eva02 import AttentionWithRoPE
    from mmpretrain.models.utils.attention import (
        BEiTAttention,
        MultiheadAttention,
    )

    return [
        (MultiheadAttention, _swap_sdpa),
        (BEiTAttention, _tap_dropout),
        (AttentionWithRoPE, _tap_dropout),
    ]


def _install(module: nn.Module, record: Record) -> Restore:
    for cls, adapter in _adapters():
        if isinstance(module, cls):
            return adapter(module, record)
    raise TypeError(
        f'Cannot record attention of {type(module).__name__}; known '
        f'attention classes: '
        f'{", ".join(c.__name__ for c, _ in _adapters())}. '
        f'{GRADIENT_METHODS_HINT}'
    )


# ----------------------------------------------------------------------
class AttentionCapture:
    """Record every block's attention ``(B, heads, N, N)`` and the grid.

    Use as a context manager around one forward pass; read the tensors with
    :meth:`collected`. They keep their graph, so gradients of a class score
    with respect to them come from ``torch.autograd.grad``.

    Args:
        model: A classifier (``model.backbone`` is explained) or a backbone.
    """

    def __init__(self, model: nn.Module) -> None:
        _, self.backbone = feature_root(model)
        self.facts = attention_facts(self.backbone)
        blocks = getattr(self.backbone, self.facts.blocks)
        self.modules = [getattr(b, self.facts.attn) for b in blocks]
        self.attentions: List[Optional[torch.Tensor]] = []
        self._calls: List[int] = []
        self._restores: List[Restore] = []
        self._grid = GridCapture(
            getattr(self.backbone, self.facts.grid_source, None)
        )
        self.clear()

    @property
    def num_extra_tokens(self) -> int:
        return num_extra_tokens(self.backbone)

    @property
    def grid(self) -> Optional[Tuple[int, int]]:
        """Patch grid ``(h, w)`` reported during the last forward."""
        return self._grid.grid

    def _recorder(self, index: int) -> Record:

        def record(attn: torch.Tensor) -> None:
            self.attentions[index] = attn
            self._calls[index] += 1

        return record

    def __enter__(self) -> 'AttentionCapture':
        try:
            for i, module in enumerate(self.modules):
                self._restores.append(_install(module, self._recorder(i)))
            self._grid.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._restores:
            self._restores.pop()()
        self._grid.__exit__()

    def clear(self) -> None:
        self.attentions = [None] * len(self.modules)
        self._calls = [0] * len(self.modules)

    def collected(self) -> List[torch.Tensor]:
        """The recorded attentions, one per block, checked for completeness."""
        missing = [i for i, a in enumerate(self.attentions) if a is None]
        if missing:
            raise RuntimeError(
                f'Attention of block(s) {missing} of '
                f'{type(self.backbone).__name__} did not run; '
                'was the forward pass inside the capture?'
            )
        repeated = [i for i, n in enumerate(self._calls) if n > 1]
        if repeated:
            raise RuntimeError(
                f'Attention of block(s) {repeated} ran more '
                'than once in one capture; call clear() '
                'between forward passes.'
            )
        return [a for a in self.attentions if a is not None]
