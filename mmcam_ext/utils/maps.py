"""Map arithmetic shared by the engine and the methods."""

from typing import List, Tuple

import torch
import torch.nn.functional as F

__all__ = ['normalize_maps', 'resize_maps', 'combine_layers', 'spatial_size']


def spatial_size(x: torch.Tensor) -> Tuple[int, int]:
    """The last two dims ``(H, W)`` of a ``(..., H, W)`` tensor, as ints.

    Args:
        x (torch.Tensor): A tensor with at least two dims.

    Returns:
        tuple[int, int]: ``(H, W)``.
    """
    return int(x.shape[-2]), int(x.shape[-1])


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(..., h, w)`` map to ``[0, 1]``.

    Same arithmetic as pytorch-grad-cam's ``scale_cam_image``.

    Args:
        maps (torch.Tensor): Maps ``(..., h, w)``.

    Returns:
        torch.Tensor: Maps of the same shape in ``[0, 1]``.
    """
    flat = maps.flatten(-2)
    flat = flat - flat.min(dim=-1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=-1, keepdim=True).values)
    return flat.view_as(maps)


def resize_maps(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(N, h, w)`` maps to ``size``.

    Args:
        maps (torch.Tensor): Maps ``(N, h, w)``.
        size (tuple[int, int]): Output ``(H, W)``.

    Returns:
        torch.Tensor: ``(N, H, W)``; ``maps`` itself when already that size.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(
        maps.unsqueeze(1), size=size, mode='bilinear', align_corners=False
    ).squeeze(1)


def combine_layers(
    raw: List[torch.Tensor], size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-layer signed maps -> final ``[0, 1]`` map and mean signed map.

    Per layer: ReLU, normalise, resize; then mean over layers and normalise,
    as pytorch-grad-cam aggregates several target layers.

    Args:
        raw (list[torch.Tensor]): One signed ``(B, h, w)`` map per layer.
        size (tuple[int, int]): Output ``(H, W)``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(B, H, W)`` final maps in
        ``[0, 1]`` and the mean of the resized signed maps.
    """
    scaled = [resize_maps(normalize_maps(r.clamp(min=0)), size) for r in raw]
    final = normalize_maps(torch.stack(scaled, 0).clamp(min=0).mean(0))
    signed = torch.stack([resize_maps(r, size) for r in raw], 0).mean(0)
    return final, signed
