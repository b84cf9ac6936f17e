"""Deletion / insertion AUC (Petsiuk et al., RISE, 2018), batched in torch.

Deletion replaces the most salient pixels first by a blurred copy of the
image and follows the target class probability down (lower AUC = more
faithful map); insertion starts from the blurred image and restores the most
salient pixels first (higher AUC = more faithful). One forward pass per step
serves the whole batch.
"""

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.model import classifier_logits

__all__ = ['deletion_insertion_auc', 'saliency_order', 'blur']


def blur(inputs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` (reflect padding)."""
    radius = max(1, int(3 * sigma))
    coords = torch.arange(
        -radius, radius + 1, dtype=inputs.dtype, device=inputs.device
    )
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    chans = inputs.shape[1]
    x = F.pad(inputs, (radius, radius, radius, radius), mode='reflect')
    x = F.conv2d(
        x, kernel.view(1, 1, 1, -1).expand(chans, 1, 1, -1), groups=chans
    )
    return F.conv2d(
        x, kernel.view(1, 1, -1, 1).expand(chans, 1, -1, 1), groups=chans
    )


def saliency_order(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rank ``(B, H*W)`` of each pixel, 0 = most salient.

    Ties (a flat or blank map) are broken by a seeded random order, not
    raster order, so a blank map scores like a random one.
    """
    flat = maps.flatten(1).float()
    gen = torch.Generator().manual_seed(seed)
    jitter = torch.rand(flat.shape, generator=gen).to(flat.device)
    scale = flat.abs().amax(1, keepdim=True).clamp(min=1e-12) * 1e-6
    order = (flat + jitter * scale).argsort(dim=1, descending=True)
    return order.argsort(dim=1)


def _probs(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    with torch.no_grad():
        return (
            classifier_logits(model, x)
            .float()
            .softmax(-1)
            .gather(1, targets[:, None])[:, 0]
        )


def deletion_insertion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int = 16,
    sigma: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image deletion and insertion AUC in ``[0, 1]``.

    Args:
        model (nn.Module): Classifier in eval mode.
        inputs (torch.Tensor): Preprocessed ``(B, 3, H, W)``.
        maps (torch.Tensor): Saliency ``(B, H, W)`` at input resolution.
        targets (torch.Tensor): ``(B, )`` class whose probability is
            followed.
        steps (int): Number of equal pixel fractions (``steps + 1``
            points). Defaults to 16.
        sigma (float): Blur of the baseline in pixels; 0 =
            ``min(H, W) / 8``. Defaults to 0.0.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(deletion, insertion)``, each
        ``(B, )``: the mean of the probability curve over the fractions
        (trapezoid rule).
    """
    bsz, _, height, width = inputs.shape
    base = blur(inputs, sigma or min(height, width) / 8)
    rank = saliency_order(maps).view(bsz, 1, height, width)
    npix = height * width
    dels, inss = [], []
    for s in range(steps + 1):
        salient = (rank < round(npix * s / steps)).to(inputs.dtype)
        dels.append(
            _probs(model, inputs * (1 - salient) + base * salient, targets)
        )
        inss.append(
            _probs(model, base * (1 - salient) + inputs * salient, targets)
        )
    return _trapezoid(torch.stack(dels, 1)), _trapezoid(torch.stack(inss, 1))


def _trapezoid(curve: torch.Tensor) -> torch.Tensor:
    """Area under ``(B, n)`` samples on ``[0, 1]``, equally spaced."""
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * (curve.shape[1] - 1))
