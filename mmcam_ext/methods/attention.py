"""Transformer-native explanations that follow attention through all blocks.

Grad-CAM explains one layer's token features; these methods follow the class
token's attention through every block instead:

* :class:`AttentionRollout` (Abnar & Zuidema, 2020), class-agnostic.
* :class:`GradAttention`: per block the gradient-weighted attention
  ``mean_heads(A ⊙ ∂y_c/∂A)``, multiplied over blocks per patch.
* :class:`AttentionRelevance` (Chefer et al., ICCV 2021, "generic
  attention-model explainability"), class-specific.

All work on a batch at once (the gradient of the sum over the batch of each
sample's own target score gives each sample its own gradient, because
samples do not interact in eval mode), on the real patch grid the backbone
reports for this input (non-square allowed), and drop the extra tokens
(cls, distillation) given by the backbone's ``num_extra_tokens``.

The pure token-space functions (:func:`rollout`, :func:`relevance`,
:func:`grad_attention_saliency`) take lists of ``(B, heads, N, N)`` tensors,
so they can be checked against a hand computation without a model.
"""

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..registry import CAM_METHODS
from ..utils.maps import normalize_maps, spatial_size
from ..utils.model import classifier_logits
from .attention_capture import AttentionCapture
from .base import ExplainContext, FullMapMethod

__all__ = [
    'AttentionRollout',
    'GradAttention',
    'AttentionRelevance',
    'rollout',
    'relevance',
    'grad_attention_saliency',
    'fuse_heads',
    'readout',
    'tokens_to_maps',
    'HEAD_FUSIONS',
]

Tensors = Sequence[torch.Tensor]
HEAD_FUSIONS = ('mean', 'max', 'min')


def fuse_heads(attn: torch.Tensor, fusion: str = 'mean') -> torch.Tensor:
    """``(B, heads, N, N)`` -> ``(B, N, N)`` by mean, max or min over heads."""
    if fusion == 'mean':
        return attn.mean(dim=1)
    if fusion == 'max':
        return attn.amax(dim=1)
    if fusion == 'min':
        return attn.amin(dim=1)
    raise ValueError(
        f'Unknown head fusion {fusion!r}; choose from {HEAD_FUSIONS}.'
    )


def _discard_lowest(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the lowest ``ratio`` fraction of each sample's ``N x N`` entries.

    Ties at the threshold are kept, so the fraction discarded is at most
    ``ratio``; the identity added afterwards keeps every row non-zero.
    """
    flat = fused.flatten(1)
    n_drop = int(flat.shape[1] * ratio)
    if n_drop == 0:
        return fused
    drop = flat.topk(n_drop, dim=1, largest=False).indices
    kept = flat.scatter(1, drop, 0.0)
    return kept.view_as(fused)


def rollout(
    attns: Tensors, head_fusion: str = 'mean', discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout: token-to-token flow ``(B, N, N)`` through all blocks.

    Per block: fuse heads, discard the weakest entries, add the identity for
    the residual connection and renormalise rows to sum to one; then
    multiply the blocks, later blocks on the left, so row ``i`` says how
    much output token ``i`` draws on each input token.
    """
    joint = None
    for attn in attns:
        fused = _discard_lowest(
            fuse_heads(attn.float(), head_fusion), discard_ratio
        )
        eye = torch.eye(fused.shape[-1], device=fused.device)
        step = fused + eye
        step = step / step.sum(dim=-1, keepdim=True)
        joint = step if joint is None else step @ joint
    if joint is None:
        raise ValueError('Attention rollout needs at least one block.')
    return joint


def relevance(attns: Tensors, grads: Tensors) -> torch.Tensor:
    """Chefer et al. relevance ``(B, N, N)``: ``R ← R + Ā @ R`` per block.

    ``Ā = mean_heads(clamp(∇A ⊙ A, min=0))`` keeps the attention that raises
    the class score; ``R`` starts at the identity (each token is relevant
    to itself through the residual path).
    """
    rel = None
    for attn, grad in zip(attns, grads):
        cam = (grad.float() * attn.float()).clamp(min=0).mean(dim=1)
        if rel is None:
            rel = torch.eye(cam.shape[-1], device=cam.device).expand_as(cam)
        rel = rel + cam @ rel
    if rel is None:
        raise ValueError('Relevance needs at least one block.')
    return rel


def readout(tokens: torch.Tensor, rows: slice, num_extra: int) -> torch.Tensor:
    """Mean readout row of ``(B, N, N)`` over the patch columns: ``(B, P)``."""
    return tokens[:, rows, num_extra:].mean(dim=1)


def grad_attention_saliency(
    attns: Tensors, grads: Tensors, rows: slice, num_extra: int, eps: float
) -> torch.Tensor:
    """Per patch ``∏_b (S_b − min S_b + ε_b)``, returned as ``(B, P)``.

    ``S_b`` is the readout row of ``mean_heads(A_b ⊙ ∂y/∂A_b)`` over patch
    tokens. The shift makes every factor non-negative (no sign flips in the
    product); ``ε_b = eps · (max S_b − min S_b)`` is relative to the block's
    range, so a zero factor cannot wipe out the other blocks whatever the
    gradient scale. The product is taken as a sum of logs and rescaled to a
    maximum of one: same map after min-max normalisation, no underflow over
    many blocks.
    """
    log_sal = None
    for attn, grad in zip(attns, grads):
        score = readout(
            (attn.float() * grad.float()).mean(dim=1), rows, num_extra
        )
        low = score.amin(dim=1, keepdim=True)
        span = score.amax(dim=1, keepdim=True) - low
        floor = eps * span.clamp(min=torch.finfo(score.dtype).tiny)
        term = torch.log(score - low + floor)
        log_sal = term if log_sal is None else log_sal + term
    if log_sal is None:
        raise ValueError('Gradient attention needs at least one block.')
    return torch.exp(log_sal - log_sal.amax(dim=1, keepdim=True))


def tokens_to_maps(
    saliency: torch.Tensor, grid: Tuple[int, int], size: Tuple[int, int]
) -> torch.Tensor:
    """Fold ``(B, P)`` patch scores onto the grid, upsample, normalise."""
    h, w = grid
    if h * w != saliency.shape[1]:
        raise ValueError(
            f'{saliency.shape[1]} patch tokens do not fill the '
            f'{h}x{w} patch grid of this input; check the '
            "backbone's num_extra_tokens."
        )
    # Token-level min-max first: relevance scores of an untrained model can
    # span 1e-4, where normalize_maps' 1e-7 guard would cap the peak below 1.
    maps = normalize_maps(saliency.float().reshape(-1, h, w))[:, None]
    maps = F.interpolate(
        maps, size=tuple(size), mode='bilinear', align_corners=False
    )
    return normalize_maps(maps[:, 0])


def readout_rows(capture: AttentionCapture) -> slice:
    """Token rows whose output reaches the head.

    With ``out_type='cls_token'`` (or ``'raw'``) and extra tokens the head
    reads the extra tokens (cls; cls *and* distillation for distilled DeiT,
    whose head averages both), so their rows are averaged. With
    ``avg_featmap``/``featmap`` (BEiT's default, RevViT) the head reads the
    patch tokens, so the mean patch row is the one to explain.
    """
    extra = capture.num_extra_tokens
    out_type = getattr(capture.backbone, 'out_type', 'cls_token')
    if extra > 0 and out_type in ('cls_token', 'raw'):
        return slice(0, extra)
    return slice(extra, None)


class AttentionMethod(FullMapMethod):
    """Shared pass: record attentions (and their gradients), fold to maps.

    ``needs_layer_gate = False``: the engine's layer gate would detach the
    graph at the target layer; instead the input is made to require grad so
    gradients reach every block's attention although the engine freezes the
    parameters. ``aug_smooth`` is applied by the engine; ``eigen_smooth``
    has no meaning here and is ignored.
    """

    needs_layer_gate = False

    def explain(
        self, ctx: ExplainContext, k: int, aug_smooth: bool, eigen_smooth: bool
    ) -> torch.Tensor:
        targets = ctx.targets[:, k].to(ctx.inputs.device)
        saliency, grid = self.patch_saliency(ctx.model, ctx.inputs, targets)
        return tokens_to_maps(saliency, grid, spatial_size(ctx.inputs))

    def patch_saliency(
        self,
        model: torch.nn.Module,
        inputs: torch.Tensor,
        targets: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Raw per-patch scores ``(B, P)`` and the patch grid ``(h, w)``."""
        with AttentionCapture(model) as cap:
            x = inputs.detach().requires_grad_(self.uses_gradients)
            with torch.set_grad_enabled(self.uses_gradients):
                logits = classifier_logits(model, x)
                attns = cap.collected()
            grads = None
            if self.uses_gradients:
                grads = self._gradients(logits, attns, targets)
            rows, extra = readout_rows(cap), cap.num_extra_tokens
            grid = cap.grid
        if grid is None:
            raise RuntimeError(
                f'{cap.facts.grid_source} of '
                f'{type(cap.backbone).__name__} reported no '
                'patch grid.'
            )
        attns = [a.detach() for a in attns]
        return self.token_scores(attns, grads, rows, extra), grid

    @staticmethod
    def _gradients(
        logits: torch.Tensor,
        attns: List[torch.Tensor],
        targets: Optional[torch.Tensor],
    ) -> List[torch.Tensor]:
        if targets is None or targets.shape != (logits.shape[0],):
            raise ValueError(
                'Class-specific attention methods need one '
                f'target class per sample, got {targets!r}.'
            )
        score = logits.gather(1, targets.long()[:, None]).sum()
        grads = torch.autograd.grad(score, attns)
        if not any(bool(g.abs().max() > 0) for g in grads):
            raise ValueError(
                'The class score has zero gradient with respect to every '
                'attention map, so every map would be blank. Is the head '
                'zero-initialised? Load trained weights.'
            )
        return [g.detach() for g in grads]

    def token_scores(
        self,
        attns: List[torch.Tensor],
        grads: Optional[List[torch.Tensor]],
        rows: slice,
        num_extra: int,
    ) -> torch.Tensor:
        """Per-patch scores ``(B, P)`` from attentions (and gradients)."""
        raise NotImplementedError


@CAM_METHODS.register_module()
class AttentionRollout(AttentionMethod):
    """Attention rollout (Abnar & Zuidema 2020); the same map for any class.

    Args:
        head_fusion: How heads are fused per block: ``'mean'``, ``'max'``
            or ``'min'``. Defaults to ``'mean'``.
        discard_ratio: Fraction of the weakest fused attention entries set
            to zero per block, in ``[0, 1)``; removes diffuse background
            attention. Defaults to 0.
    """

    aliases = ('rollout', 'attn_rollout')
    uses_gradients = False

    def __init__(
        self, head_fusion: str = 'mean', discard_ratio: float = 0.0
    ) -> None:
        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(
                f'head_fusion must be one of {HEAD_FUSIONS}, '
                f'got {head_fusion!r}.'
            )
        if not 0.0 <= discard_ratio < 1.0:
            raise ValueError(
                f'discard_ratio must be in [0, 1), got {discard_ratio}.'
            )
        self.head_fusion = head_fusion
        self.discard_ratio = discard_ratio

    def token_scores(self, attns, grads, rows, num_extra):
        joint = rollout(attns, self.head_fusion, self.discard_ratio)
        return readout(joint, rows, num_extra)


@CAM_METHODS.register_module()
class GradAttention(AttentionMethod):
    """Gradient-weighted attention multiplied over blocks, class-specific.

    Args:
        eps: Floor added to each block's shifted scores, as a fraction of
            that block's range, so one block's zero does not erase a patch.
            Defaults to 1e-3.
    """

    aliases = ('grad_attn', 'attention_grad')

    def __init__(self, eps: float = 1e-3) -> None:
        if not eps > 0:
            raise ValueError(f'eps must be > 0, got {eps}.')
        self.eps = eps

    def token_scores(self, attns, grads, rows, num_extra):
        return grad_attention_saliency(attns, grads, rows, num_extra, self.eps)


@CAM_METHODS.register_module()
class AttentionRelevance(AttentionMethod):
    """Relevance propagation of Chefer et al. (ICCV 2021), class-specific."""

    aliases = ('relevance', 'generic_attention', 'chefer')

    def token_scores(self, attns, grads, rows, num_extra):
        return readout(relevance(attns, grads), rows, num_extra)
