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
(cls, distillation, register tokens).

Windowed and hierarchical transformers (Swin, Swin V2, Twins, DaViT, MixMIM,
TinyViT, ViT-SAM, timm Swin and VOLO) work the same way: each block's
attention is recorded per window and put back onto its stage's token grid
(:mod:`attention_geometry`: cyclic shift undone, window-local indices mapped
to grid positions, padding dropped), never as a dense ``L x L`` matrix:

* rollout and relevance propagate the *readout row* from the last block to
  the first as a vector, ``v <- v @ step_b``, which equals reading the row of
  the product of the per-block matrices. Between stages a merged token's
  share is split equally among the ``2 x 2`` (in general
  ``stride x stride``) tokens it merged, as if patch merging were one more
  attention step with uniform weights and no residual; sub-sampled keys
  (Twins) spread the same way onto the tokens they were pooled from.
* grad-attention computes each block's per-token score on its own grid and
  brings it to the finest grid (each fine token takes the score of the
  coarse token that contains it) before the product over blocks.

The readout row is the row of the tokens the head reads: the class token
(mean of class and distillation rows for distilled DeiT). Models without a
class token (global-average-pooled heads: Swin, Twins, BEiT's
``avg_featmap``) read the *mean of all patch query rows*, i.e. the pooled
output itself, as Beyond Intuition and LeGrad do for pooled models: the
pooled feature is what the head sees, and every token contributes to it
equally. Blocks that precede the class token (VOLO's outlookers, XCiT's
patch stages) use the same mean row for grad-attention.

The pure token-space functions (:func:`rollout`, :func:`relevance`,
:func:`grad_attention_saliency`) take lists of dense ``(B, heads, N, N)``
tensors; they are the reference the block-wise versions are tested
against, and can be checked against a hand computation without a model.
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import InputError, ModelError, TargetError
from ..registry import CAM_METHODS
from ..utils.maps import normalize_maps, spatial_size
from ..utils.model import classifier_logits
from .attention_capture import (
    AttentionCapture,
    AttentionGrad,
    BlockAttention,
    dense_grad,
)
from .attention_geometry import (
    FLOW,
    SCORE,
    TokenSpace,
    apply_attention,
    keys_to_space,
    patch_part,
    regrid,
    scatter_cols,
)
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
    'head_readout',
    'block_rollout',
    'block_relevance',
    'block_grad_attention',
    'HEAD_FUSIONS',
]

Tensors = Sequence[torch.Tensor]
#: Gradients of the blocks: tensors, or formed when read (in the loop).
Grads = Sequence[Union[torch.Tensor, AttentionGrad]]
HEAD_FUSIONS = ('mean', 'max', 'min')


def fuse_heads(
    attn: torch.Tensor, fusion: str = 'mean', dim: int = 1
) -> torch.Tensor:
    """Fuse the heads of attention maps by mean, max or min.

    Args:
        attn (torch.Tensor): E.g. ``(B, heads, N, N)``.
        fusion (str): ``'mean'``, ``'max'`` or ``'min'``. Defaults to
            ``'mean'``.
        dim (int): The heads dimension. Defaults to 1.

    Returns:
        torch.Tensor: ``attn`` without the heads dimension.
    """
    if fusion == 'mean':
        return attn.mean(dim=dim)
    if fusion == 'max':
        return attn.amax(dim=dim)
    if fusion == 'min':
        return attn.amin(dim=dim)
    raise InputError(
        f'Unknown head fusion {fusion!r}; choose from {HEAD_FUSIONS}.'
    )


def _discard_lowest(
    fused: torch.Tensor, ratio: float, valid: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Zero the lowest ``ratio`` fraction of each sample's attention entries.

    Only entries between two real tokens count (``valid``, broadcast over
    the batch); for global attention that is every ``N x N`` entry. Ties at
    the threshold are kept, so the fraction discarded is at most ``ratio``;
    the identity added afterwards keeps every row non-zero.
    """
    if ratio == 0:
        return fused
    count = fused[0].numel() if valid is None else int(valid.sum())
    n_drop = int(count * ratio)
    if n_drop == 0:
        return fused
    flat = fused
    if valid is not None:
        flat = fused.masked_fill(~valid, float('inf'))
    drop = flat.flatten(1).topk(n_drop, dim=1, largest=False).indices
    kept = fused.flatten(1).scatter(1, drop, 0.0)
    return kept.view_as(fused)


def rollout(
    attns: Tensors, head_fusion: str = 'mean', discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout: token-to-token flow ``(B, N, N)`` through all blocks.

    Per block: fuse heads, discard the weakest entries, add the identity for
    the residual connection and renormalise rows to sum to one; then
    multiply the blocks, later blocks on the left, so row ``i`` says how
    much output token ``i`` draws on each input token.

    Args:
        attns (Sequence[torch.Tensor]): ``(B, heads, N, N)`` per block.
        head_fusion (str): ``'mean'``, ``'max'`` or ``'min'``. Defaults to
            ``'mean'``.
        discard_ratio (float): Share of the weakest entries zeroed per
            block. Defaults to 0.

    Returns:
        torch.Tensor: ``(B, N, N)``.
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

    Args:
        attns (Sequence[torch.Tensor]): ``(B, heads, N, N)`` per block.
        grads (Sequence[torch.Tensor]): Their gradients.

    Returns:
        torch.Tensor: ``(B, N, N)``.
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
    """Mean readout row of ``(B, N, N)`` over the patch columns.

    Args:
        tokens (torch.Tensor): ``(B, N, N)`` token-to-token matrices.
        rows (slice): The readout rows (averaged).
        num_extra (int): Extra tokens before the patches.

    Returns:
        torch.Tensor: ``(B, P)``.
    """
    return tokens[:, rows, num_extra:].mean(dim=1)


def _log_factor(score: torch.Tensor, eps: float) -> torch.Tensor:
    """``log(S − min S + ε·range S)`` per sample of ``(B, P)`` scores."""
    low = score.amin(dim=1, keepdim=True)
    span = score.amax(dim=1, keepdim=True) - low
    floor = eps * span.clamp(min=torch.finfo(score.dtype).tiny)
    return torch.log(score - low + floor)


def _normalised_product(log_sal: Optional[torch.Tensor]) -> torch.Tensor:
    if log_sal is None:
        raise ValueError('Gradient attention needs at least one block.')
    return torch.exp(log_sal - log_sal.amax(dim=1, keepdim=True))


def grad_attention_saliency(
    attns: Tensors, grads: Tensors, rows: slice, num_extra: int, eps: float
) -> torch.Tensor:
    """Per patch ``∏_b (S_b − min S_b + ε_b)`` from dense attention maps.

    ``S_b`` is the readout row of ``mean_heads(A_b ⊙ ∂y/∂A_b)`` over patch
    tokens. The shift makes every factor non-negative (no sign flips in the
    product); ``ε_b = eps · (max S_b − min S_b)`` is relative to the block's
    range, so a zero factor cannot wipe out the other blocks whatever the
    gradient scale. The product is taken as a sum of logs and rescaled to a
    maximum of one: same map after min-max normalisation, no underflow over
    many blocks.

    Args:
        attns (Sequence[torch.Tensor]): ``(B, heads, N, N)`` per block.
        grads (Sequence[torch.Tensor]): Their gradients.
        rows (slice): The readout rows (averaged).
        num_extra (int): Extra tokens before the patches.
        eps (float): Relative floor of each factor.

    Returns:
        torch.Tensor: ``(B, P)`` saliency, maximum 1 per sample.
    """
    log_sal = None
    for attn, grad in zip(attns, grads):
        score = readout(
            (attn.float() * grad.float()).mean(dim=1), rows, num_extra
        )
        term = _log_factor(score, eps)
        log_sal = term if log_sal is None else log_sal + term
    return _normalised_product(log_sal)


def tokens_to_maps(
    saliency: torch.Tensor, grid: Tuple[int, int], size: Tuple[int, int]
) -> torch.Tensor:
    """Fold ``(B, P)`` patch scores onto the grid, upsample, normalise.

    Args:
        saliency (torch.Tensor): ``(B, h*w)`` scores, row-major.
        grid (tuple[int, int]): The patch grid ``(h, w)``.
        size (tuple[int, int]): Output ``(H, W)``.

    Returns:
        torch.Tensor: ``(B, H, W)`` maps in ``[0, 1]``.
    """
    h, w = grid
    if h * w != saliency.shape[1]:
        raise ModelError(
            f'{saliency.shape[1]} patch tokens do not fill the '
            f'{h}x{w} patch grid of this input; check the '
            "backbone's num_extra_tokens."
        )
    # Token-level min-max first, in the scores' own precision: relevance
    # scores of an untrained model can vary by 1e-9 around 1/P, where a
    # float32 map (or normalize_maps' 1e-7 guard) would be blank.
    flat = saliency.double().flatten(1)
    flat = flat - flat.amin(dim=1, keepdim=True)
    peak = flat.amax(dim=1, keepdim=True)
    flat = torch.where(peak > 0, flat / peak.clamp(min=1e-300), flat)
    maps = flat.float().reshape(-1, h, w)[:, None]
    maps = F.interpolate(
        maps, size=tuple(size), mode='bilinear', align_corners=False
    )
    return normalize_maps(maps[:, 0])


# ----------------------------------------------------------------------
# Block-wise versions: any geometry (windows, shifts, sub-sampled keys,
# stages), vectors instead of dense matrices.
def head_readout(
    space: TokenSpace, head_tokens: int, bsz: int, device=None
) -> torch.Tensor:
    """The readout row over a block's tokens, ``(B, space.size)``.

    Uniform over the first ``head_tokens`` tokens when the block has them
    (the class token, or class and distillation token); otherwise uniform
    over the patch tokens: the mean of all patch rows, which is the pooled
    output of a global-average-pooled head.

    Args:
        space (TokenSpace): The block's tokens.
        head_tokens (int): Leading tokens the head reads (0: pooled).
        bsz (int): Batch size.
        device (torch.device, optional): Device. Defaults to None.

    Returns:
        torch.Tensor: Rows that sum to one.
    """
    row = torch.zeros(space.size, device=device, dtype=torch.float64)
    if 0 < head_tokens <= space.extra:
        row[:head_tokens] = 1.0 / head_tokens
    else:
        row[space.extra :] = 1.0 / (space.size - space.extra)
    return row.expand(bsz, -1)


def _valid(block: BlockAttention) -> torch.Tensor:
    return block.geometry.valid.to(block.attn.device)


def _propagate(
    blocks: Sequence[BlockAttention], head_tokens: int, step
) -> Tuple[torch.Tensor, TokenSpace]:
    """Run ``v <- step(i, block, v)`` from the last block to the first.

    ``v`` starts as the readout row of the last block and is moved onto
    each earlier block's tokens (:func:`regrid`) before its step.
    """
    if not blocks:
        raise ValueError('Attention methods need at least one block.')
    last = blocks[-1]
    space = last.space
    v = head_readout(space, head_tokens, last.attn.shape[0], last.attn.device)
    for i in range(len(blocks) - 1, -1, -1):
        v = regrid(v, space, blocks[i].space, FLOW)
        v = step(i, blocks[i], v)
        space = blocks[i].geometry.input_space
    return patch_part(v, space), space


def _global_mean_step(attn: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v @ rownorm(mean_heads(A) + I)`` for one global window
    ``attn`` ``(B, 1, heads, N, N)``, without forming the fused matrix:
    one batched product over the heads in the recorded precision (as the
    dense :func:`rollout`), ``v`` and the row sums in float64."""
    attn = attn[:, 0]
    bsz, heads, n, _ = attn.shape
    rows = attn.sum(-1).mean(1).double()
    w = v / (rows + 1.0)
    per_head = (w / heads).to(attn.dtype)[:, None, :].expand(bsz, heads, n)
    pulled = torch.bmm(
        per_head.reshape(bsz, 1, heads * n), attn.reshape(bsz, heads * n, n)
    )
    return pulled[:, 0].double() + w


def block_rollout(
    blocks: Sequence[BlockAttention],
    head_tokens: int,
    head_fusion: str = 'mean',
    discard_ratio: float = 0.0,
) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Attention rollout of the readout row through windowed blocks.

    Per block, ``step = rownorm(Â + I)`` with ``Â`` the fused, discarded
    attention on the block's grid (padding dropped); ``v <- v @ step`` from
    the last block to the first equals the readout row of the product of
    the steps (:func:`rollout`).

    Args:
        blocks (Sequence[BlockAttention]): In forward order.
        head_tokens (int): Leading tokens the head reads (0: pooled).
        head_fusion (str): ``'mean'``, ``'max'`` or ``'min'``. Defaults to
            ``'mean'``.
        discard_ratio (float): Share of each sample's weakest entries
            zeroed per block. Defaults to 0.

    Returns:
        tuple: ``(B, P)`` scores over the first block's patch grid, and
        that grid.
    """

    plain = head_fusion == 'mean' and discard_ratio == 0

    def step(i, block, v):
        if plain and block.geometry.is_global:
            return _global_mean_step(block.attn, v)
        geom, valid = block.geometry, _valid(block)
        # Heads fused in the recorded precision (a mean of a few values),
        # the propagation in float64.
        fused = fuse_heads(block.attn, head_fusion, dim=2).double()
        fused = _discard_lowest(fused, discard_ratio, valid) * valid
        rows = scatter_cols(fused.sum(-1), geom.query_index, v.shape[1])
        if not geom.residual:  # no identity: rows of the attention alone
            w = v / rows.clamp(min=torch.finfo(rows.dtype).tiny)
            return apply_attention(geom, w, fused)
        w = v / (rows + 1.0)
        return keys_to_space(geom, apply_attention(geom, w, fused)) + w

    sal, space = _propagate(blocks, head_tokens, step)
    return sal, space.grid


def _global_relevance_pull(
    block: BlockAttention, grad, v: torch.Tensor, head_tokens: int
) -> torch.Tensor:
    """``v @ mean_heads(clamp(∂y/∂A ⊙ A, min=0))`` of one global window.

    Where ``v`` is the readout row of the class token(s) (the last block of
    a class-token model) and the gradient allows it, only those rows of
    ``A`` and ``∂y/∂A`` are formed (:meth:`AttentionGrad.head_rows`).
    """
    t = head_tokens
    if isinstance(grad, AttentionGrad) and 0 < t and not v[:, t:].any():
        rows = grad.head_rows(t)
        if rows is not None:
            attn, dattn = rows
            cam = (attn * dattn).clamp_(min=0).mean(dim=1).double()
            return torch.bmm(v[:, None, :t], cam)[:, 0]
    if isinstance(grad, AttentionGrad):
        cam = grad.times(block.attn)
    else:
        cam = grad * block.attn
    cam = cam.clamp_(min=0).mean(dim=2)[:, 0].double()
    return torch.bmm(v[:, None], cam)[:, 0]


def block_relevance(
    blocks: Sequence[BlockAttention],
    grads: Grads,
    head_tokens: int,
) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Chefer relevance of the readout row through windowed blocks.

    ``v <- v + v @ Ā_b`` from the last block to the first equals the readout
    row of ``R`` in :func:`relevance`.

    Args:
        blocks (Sequence[BlockAttention]): In forward order.
        grads (Grads): ``∂y/∂A`` per block, in the blocks'
            layout.
        head_tokens (int): Leading tokens the head reads (0: pooled).

    Returns:
        tuple: ``(B, P)`` scores over the first block's patch grid, and
        that grid.
    """

    def step(i, block, v):
        if block.geometry.is_global:
            return v + _global_relevance_pull(block, grads[i], v, head_tokens)
        cam = (dense_grad(grads[i]) * block.attn).clamp_(min=0)
        cam = cam.mean(dim=2).double() * _valid(block)
        geom = block.geometry
        if not geom.residual:  # R <- Ā R: no identity to carry
            return apply_attention(geom, v, cam)
        return v + keys_to_space(geom, apply_attention(geom, v, cam))

    sal, space = _propagate(blocks, head_tokens, step)
    return sal, space.grid


def _kept_score(
    block: BlockAttention, grad, head_tokens: int
) -> Optional[torch.Tensor]:
    """The readout row of ``mean_heads(A ⊙ ∂y/∂A)`` (``(B, space.size)``)
    of a kept kernel without forming ``∂y/∂A`` (see
    :class:`AttentionGrad`); ``None`` where the block does not allow it.

    With a class-token readout only the first ``head_tokens`` rows are
    read, so ``A`` and ``∂y/∂A`` of those rows suffice (``O(N d)`` instead
    of ``O(N² d)`` per head); with a pooled readout (every patch row)
    :meth:`BlockAttention.readout_score` pulls the row through ``Aᵀ``.
    """
    if not isinstance(grad, AttentionGrad):
        return None
    rows = grad.head_rows(head_tokens)
    if rows is not None:
        attn, dattn = rows
        weighted = (attn * dattn).mean(dim=1).double()  # (B, rows, N)
        return weighted.mean(dim=1)
    if grad.grad is None:
        return None
    at = grad.grad
    row = head_readout(block.space, head_tokens, at.shape[0], at.device)
    return grad.readout_score(row)


def block_grad_attention(
    blocks: Sequence[BlockAttention],
    grads: Grads,
    head_tokens: int,
    eps: float,
) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Gradient-weighted attention of windowed blocks, on the finest grid.

    Per block ``S_b`` = readout row of ``mean_heads(A ⊙ ∂y/∂A)`` on the
    block's grid, brought to the finest grid of all blocks (each fine token
    takes the score of the coarse token containing it); the product over
    blocks as in :func:`grad_attention_saliency`.

    Args:
        blocks (Sequence[BlockAttention]): In forward order.
        grads (Grads): ``∂y/∂A`` per block.
        head_tokens (int): Leading tokens the head reads (0: pooled).
        eps (float): Relative floor of each factor.

    Returns:
        tuple: ``(B, P)`` saliency over the finest grid, and that grid.
    """
    fine = max(
        (b.geometry.input_space.grid for b in blocks),
        key=lambda g: g[0] * g[1],
    )
    log_sal = None
    for block, grad in zip(blocks, grads):
        geom = block.geometry
        score = _kept_score(block, grad, head_tokens)
        if score is None:
            weighted = (block.attn * dense_grad(grad)).mean(dim=2).double()
            weighted = weighted * _valid(block)
            row = head_readout(geom.space, head_tokens, weighted.shape[0])
            score = apply_attention(geom, row.to(weighted.device), weighted)
            if geom.residual:  # keys on the block's own tokens
                score = keys_to_space(geom, score, SCORE)
        tokens = geom.input_space
        score = regrid(
            patch_part(score, tokens),
            TokenSpace(tokens.grid),
            TokenSpace(fine),
            SCORE,
        )
        term = _log_factor(score, eps)
        log_sal = term if log_sal is None else log_sal + term
    return _normalised_product(log_sal), fine


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
        self, ctx: ExplainContext, k: int, eigen_smooth: bool
    ) -> torch.Tensor:
        """Maps ``(B, H, W)`` for target column ``k``.

        Args:
            ctx (ExplainContext): The batch.
            k (int): Target column.
            eigen_smooth (bool): Ignored.

        Returns:
            torch.Tensor: Maps in ``[0, 1]`` at input resolution.
        """
        targets = ctx.targets[:, k].to(ctx.inputs.device)
        saliency, grid = self.patch_saliency(ctx.model, ctx.inputs, targets)
        return tokens_to_maps(saliency, grid, spatial_size(ctx.inputs))

    def patch_saliency(
        self,
        model: torch.nn.Module,
        inputs: torch.Tensor,
        targets: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Raw per-patch scores ``(B, P)`` and their patch grid ``(h, w)``.

        Args:
            model (torch.nn.Module): The classifier.
            inputs (torch.Tensor): Preprocessed batch ``(B, 3, H, W)``.
            targets (torch.Tensor, optional): ``(B,)`` classes; needed by
                the class-specific methods.

        Returns:
            tuple: Scores and grid (the finest grid the attention runs on).
        """
        with AttentionCapture(model) as cap:
            x = inputs.detach().requires_grad_(self.uses_gradients)
            with torch.set_grad_enabled(self.uses_gradients):
                logits = classifier_logits(model, x)
                blocks = cap.collected()
            grads = None
            if self.uses_gradients:
                raw = self._gradients(logits, [b.raw for b in blocks], targets)
                grads = [b.local(g) for b, g in zip(blocks, raw)]
        for block in blocks:
            block.attn = block.attn.detach()
        return self.token_scores(blocks, grads, cap.head_tokens)

    @staticmethod
    def _gradients(
        logits: torch.Tensor,
        attns: List[torch.Tensor],
        targets: Optional[torch.Tensor],
    ) -> List[torch.Tensor]:
        if targets is None or targets.shape != (logits.shape[0],):
            raise TargetError(
                'Class-specific attention methods need one '
                f'target class per sample, got {targets!r}.'
            )
        score = logits.gather(1, targets.long()[:, None]).sum()
        grads = torch.autograd.grad(score, attns, allow_unused=True)
        if not any(g is not None and bool(g.abs().max() > 0) for g in grads):
            raise ModelError(
                'The class score has zero gradient with respect to every '
                'attention map, so every map would be blank. Is the head '
                'zero-initialised? Load trained weights.'
            )
        return [
            torch.zeros_like(a) if g is None else g.detach()
            for a, g in zip(attns, grads)
        ]

    def token_scores(
        self,
        blocks: List[BlockAttention],
        grads: Optional[Grads],
        head_tokens: int,
    ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Per-patch scores ``(B, P)`` and their grid.

        Args:
            blocks (list[BlockAttention]): Recorded blocks, forward order.
            grads (Sequence[torch.Tensor | AttentionGrad], optional): Their
                gradients, in the blocks' layout (or formed when read).
            head_tokens (int): Leading tokens the head reads (0: pooled).

        Returns:
            tuple: Scores and grid.
        """
        raise NotImplementedError


@CAM_METHODS.register_module()
class AttentionRollout(AttentionMethod):
    """Attention rollout (Abnar & Zuidema 2020); the same map for any class.

    Args:
        head_fusion (str): How heads are fused per block: ``'mean'``,
            ``'max'`` or ``'min'``. Defaults to ``'mean'``.
        discard_ratio (float): Share of the weakest fused attention entries
            set to zero per block, in ``[0, 1)``; removes diffuse background
            attention. Defaults to 0.
    """

    aliases = ('rollout', 'attn_rollout')
    uses_gradients = False
    class_agnostic = True

    def __init__(
        self, head_fusion: str = 'mean', discard_ratio: float = 0.0
    ) -> None:
        if head_fusion not in HEAD_FUSIONS:
            raise InputError(
                f'head_fusion must be one of {HEAD_FUSIONS}, '
                f'got {head_fusion!r}.'
            )
        if not 0.0 <= discard_ratio < 1.0:
            raise InputError(
                f'discard_ratio must be in [0, 1), got {discard_ratio}.'
            )
        self.head_fusion = head_fusion
        self.discard_ratio = discard_ratio

    def token_scores(self, blocks, grads, head_tokens):
        """Rollout of the readout row (see :func:`block_rollout`)."""
        return block_rollout(
            blocks, head_tokens, self.head_fusion, self.discard_ratio
        )


@CAM_METHODS.register_module()
class GradAttention(AttentionMethod):
    """Gradient-weighted attention multiplied over blocks, class-specific.

    Per block ``S_b = mean_heads(A_b ⊙ ∂y_c/∂A_b)`` read at the head's row,
    per token ``∏_b (S_b − min S_b + ε_b)`` with ``ε_b = eps · range(S_b)``.

    Args:
        eps (float): Floor added to each block's shifted scores, as a
            fraction of that block's range, so one block's zero does not
            erase a patch; > 0. Defaults to 1e-3.
    """

    aliases = ('grad_attn', 'attention_grad')

    def __init__(self, eps: float = 1e-3) -> None:
        if not eps > 0:
            raise InputError(f'eps must be > 0, got {eps}.')
        self.eps = eps

    def token_scores(self, blocks, grads, head_tokens):
        """Product over blocks (see :func:`block_grad_attention`)."""
        assert grads is not None
        return block_grad_attention(blocks, grads, head_tokens, self.eps)


@CAM_METHODS.register_module()
class AttentionRelevance(AttentionMethod):
    """Relevance propagation of Chefer et al. (ICCV 2021), class-specific.

    ``R ← R + mean_heads(clamp(∇A ⊙ A, min=0)) @ R`` per block, read at the
    head's row. It takes no options.
    """

    aliases = ('relevance', 'generic_attention', 'chefer')

    def token_scores(self, blocks, grads, head_tokens):
        """Relevance of the readout row (see :func:`block_relevance`)."""
        assert grads is not None
        return block_relevance(blocks, grads, head_tokens)
