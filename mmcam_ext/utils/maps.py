"""Map arithmetic shared by the engine and the methods."""

from typing import List, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'normalize_maps',
    'resize_maps',
    'combine_layers',
    'spatial_size',
    'eigen_projection',
]


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


def eigen_projection(x: torch.Tensor) -> torch.Tensor:
    """Projection of each map on its first principal component.

    Same map as ``pytorch_grad_cam.utils.svd_on_activations.get_2d_projection``
    (the centred ``(h*w, C)`` matrix times its first right singular vector)
    without any SVD: the first component is the top eigenvector of the
    smaller Gram matrix, ``(h*w)^2`` or ``C^2`` (49² instead of an SVD over
    2048 channels for a ResNet-50), solved in float64. CPU LAPACK SVDs of
    these shapes took 0.07 to 1.4 s per batch here, the Gram route about
    0.01 s. A component's sign is arbitrary, and after the ReLU a flipped
    map is blank where it should be bright; so the component is oriented to
    correlate positively with the channel-summed map.
    """
    x = torch.nan_to_num(x.detach().float(), nan=0.0)
    bsz, chans, height, width = x.shape
    flat = x.reshape(bsz, chans, height * width).transpose(1, 2)
    flat = flat - flat.mean(dim=1, keepdim=True)
    proj = _first_component(flat.double()).float()
    summed = flat.sum(dim=-1)
    sign = torch.sign((proj * summed).sum(dim=-1, keepdim=True))
    proj = proj * torch.where(sign == 0, torch.ones_like(sign), sign)
    return proj.reshape(bsz, height, width)


def _first_component(flat: torch.Tensor) -> torch.Tensor:
    """``flat @ v1`` for centred ``(B, N, C)``; ``v1`` = first right
    singular vector, found from the smaller of the two Gram matrices."""
    if flat.shape[1] <= flat.shape[2]:
        evals, evecs = torch.linalg.eigh(flat @ flat.transpose(1, 2))
        # flat @ v1 = u1 * s1, with s1² the top eigenvalue of flat flat^T.
        return evecs[..., -1] * evals[..., -1:].clamp(min=0).sqrt()
    _, evecs = torch.linalg.eigh(flat.transpose(1, 2) @ flat)
    return (flat @ evecs[..., -1:]).squeeze(-1)
