"""Evidence descriptors: what a CAM says the model looked at, as a vector.

For one sample and one explained class, the target layer's activations
``A`` ``(C, h, w)`` are pooled with the map ``M`` as spatial weights::

    evidence = sum_ij relu(M)[i, j] * A[:, i, j] / sum_ij relu(M)[i, j]

(the features under the evidence), projected to :data:`EVIDENCE_DIM`
values by a fixed random projection that depends only on ``C`` and
:data:`PROJECTION_SEED` (so two dumps of the same model are comparable),
followed by the map itself average-pooled to ``LAYOUT_SIDE x LAYOUT_SIDE``
and scaled to a maximum of 1 (where the evidence lies, as in SpRAy). One
descriptor holds :data:`DESCRIPTOR_DIM` values; :func:`split_descriptors`
separates the two parts again.

A map that is zero everywhere gives a zero evidence part (nothing was
looked at), never NaN. ``maps=None`` pools uniformly: the plain pooled
features, the baseline that shows what the map adds.
"""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'EVIDENCE_DIM',
    'LAYOUT_SIDE',
    'DESCRIPTOR_DIM',
    'PROJECTION_SEED',
    'evidence_descriptors',
    'projection',
    'split_descriptors',
]

#: Values of the evidence part (the projected CAM-weighted features).
EVIDENCE_DIM = 192
#: The layout part is the map pooled to ``LAYOUT_SIDE x LAYOUT_SIDE``.
LAYOUT_SIDE = 8
#: Values of one descriptor: evidence, then layout.
DESCRIPTOR_DIM = EVIDENCE_DIM + LAYOUT_SIDE * LAYOUT_SIDE
#: Seed of the fixed projection of wide layers.
PROJECTION_SEED = 0

_PROJECTIONS: Dict[int, torch.Tensor] = {}


def projection(channels: int) -> Optional[torch.Tensor]:
    """The fixed ``(channels, EVIDENCE_DIM)`` projection, or ``None``.

    Layers with at most :data:`EVIDENCE_DIM` channels are kept as they are
    (zero-padded); wider ones are projected by a Gaussian matrix scaled by
    ``1 / sqrt(EVIDENCE_DIM)`` (distances are kept in expectation), drawn
    from a generator seeded with :data:`PROJECTION_SEED` and ``channels``.

    Args:
        channels (int): Channels of the target layer.

    Returns:
        torch.Tensor | None: The float32 CPU matrix, ``None`` when the
        layer is narrow enough to keep.
    """
    if channels <= EVIDENCE_DIM:
        return None
    if channels not in _PROJECTIONS:
        gen = torch.Generator().manual_seed(
            PROJECTION_SEED * 1_000_003 + channels
        )
        mat = torch.randn(channels, EVIDENCE_DIM, generator=gen)
        _PROJECTIONS[channels] = mat / EVIDENCE_DIM**0.5
    return _PROJECTIONS[channels]


def evidence_descriptors(
    acts: torch.Tensor, maps: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Descriptors ``(B, DESCRIPTOR_DIM)`` of a batch.

    Args:
        acts (torch.Tensor): Target-layer activations ``(B, C, h, w)``
            (token layers folded onto their patch grid first).
        maps (torch.Tensor, optional): Maps ``(B, H, W)`` at any
            resolution (the layer's own, or the input's: they are
            average-pooled to ``(h, w)``); negative values count as zero.
            Defaults to None (uniform weights: plain pooled features).

    Returns:
        torch.Tensor: float32 descriptors on the CPU.
    """
    if acts.ndim != 4:
        raise ValueError(
            f'acts must be (B, C, h, w), got {tuple(acts.shape)}.'
        )
    acts = acts.detach().float()
    b, c, h, w = acts.shape
    if maps is None:
        maps = acts.new_ones(b, h, w)
    maps = maps.detach().float().to(acts.device).clamp(min=0)
    if maps.ndim != 3 or maps.shape[0] != b:
        raise ValueError(
            f'maps must be (B, H, W) with B={b}, got {tuple(maps.shape)}.'
        )
    weights = _pool(maps, (h, w))
    total = weights.flatten(1).sum(1)
    pooled = torch.einsum('bchw,bhw->bc', acts, weights)
    pooled = pooled / total.clamp(min=1e-12)[:, None]
    pooled = torch.where(total[:, None] > 0, pooled, torch.zeros_like(pooled))
    evidence = _project(pooled.cpu())
    layout = _pool(maps, (LAYOUT_SIDE, LAYOUT_SIDE)).flatten(1).cpu()
    peak = layout.max(1, keepdim=True).values
    layout = torch.where(peak > 0, layout / peak.clamp(min=1e-12), layout)
    return torch.cat([evidence, layout], 1)


def split_descriptors(desc) -> Tuple:
    """Evidence and layout parts of ``(..., DESCRIPTOR_DIM)`` descriptors.

    Args:
        desc (numpy.ndarray | torch.Tensor): Descriptors.

    Returns:
        tuple: ``(evidence (..., EVIDENCE_DIM), layout (..., LAYOUT_SIDE **
        2))``, views of ``desc``.
    """
    if desc.shape[-1] != DESCRIPTOR_DIM:
        raise ValueError(
            f'Descriptors have {DESCRIPTOR_DIM} values, got {desc.shape[-1]}.'
        )
    return desc[..., :EVIDENCE_DIM], desc[..., EVIDENCE_DIM:]


def _pool(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Average-pool ``(B, H, W)`` maps to ``size`` (identity if equal)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.adaptive_avg_pool2d(maps[:, None], size)[:, 0]


def _project(pooled: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` -> ``(B, EVIDENCE_DIM)``: projected or zero-padded."""
    mat = projection(pooled.shape[1])
    if mat is not None:
        return pooled @ mat
    return F.pad(pooled, (0, EVIDENCE_DIM - pooled.shape[1]))
