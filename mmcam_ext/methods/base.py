"""Method base classes and name lookup.

Two kinds of method exist:

* :class:`LayerMapMethod` turns the activations ``A`` and gradients ``G`` of
  a target layer into a signed map. All of them share *one* forward and
  backward pass per batch (the engine computes ``A`` and ``G`` once).
* :class:`FullMapMethod` runs its own passes (masking, ablation, attention)
  and returns finished maps at input resolution.
"""

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from ..errors import MethodError
from ..registry import CAM_METHODS
from ..structures import TargetSpec

__all__ = [
    'BaseCAMMethod',
    'LayerMapMethod',
    'FullMapMethod',
    'ExplainContext',
    'build_method',
    'method_names',
    'normalize_name',
    'eigen_projection',
]


def normalize_name(name: str) -> str:
    """Case- and punctuation-free key: ``'Grad-CAM++'`` -> ``gradcam++``."""
    return re.sub(r'[\s_\-]', '', name.lower())


@dataclass
class ExplainContext:
    """Everything a method needs to explain one batch.

    Args:
        model: The classifier (eval mode, parameters frozen by the engine).
        inputs: Preprocessed batch ``(B, 3, H, W)``.
        spec: Target layers and layout.
        layers: The target modules, in ``spec.layers`` order.
        targets: ``(B, K)`` class indices to explain.
        to_nchw: Folds a layer output into ``(B, C, h, w)`` (grid captured at
            run time).
        logits: Scores of the unmodified forward pass ``(B, num_classes)``.
    """

    model: nn.Module
    inputs: torch.Tensor
    spec: TargetSpec
    layers: List[nn.Module]
    targets: torch.Tensor
    to_nchw: Callable[[torch.Tensor], torch.Tensor]
    logits: torch.Tensor


class BaseCAMMethod:
    """A CAM method. ``aliases`` are extra names it answers to."""

    aliases: Tuple[str, ...] = ()
    uses_gradients: bool = True

    @property
    def name(self) -> str:
        return type(self).__name__


class LayerMapMethod(BaseCAMMethod):
    """A method computed from one layer's activations and gradients."""

    def layer_map(
        self,
        acts: torch.Tensor,
        grads: Optional[torch.Tensor],
        eigen_smooth: bool,
    ) -> torch.Tensor:
        """Signed map ``(B, h, w)`` from ``(B, C, h, w)`` tensors."""
        weighted = self.weighted(acts, grads)
        if eigen_smooth:
            return eigen_projection(weighted)
        return weighted.sum(dim=1)

    def weighted(
        self, acts: torch.Tensor, grads: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Per-channel weighted activations ``(B, C, h, w)``."""
        raise NotImplementedError


class FullMapMethod(BaseCAMMethod):
    """A method that runs its own passes and returns finished maps."""

    def explain(
        self, ctx: ExplainContext, k: int, aug_smooth: bool, eigen_smooth: bool
    ) -> torch.Tensor:
        """Maps ``(B, H, W)`` in ``[0, 1]`` for target column ``k``."""
        raise NotImplementedError


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


def _method_table() -> Dict[str, Type[BaseCAMMethod]]:
    """Explicit name table built from the registry (class name + aliases)."""
    import mmcam_ext.methods  # noqa: F401  (registers everything)

    table: Dict[str, Type[BaseCAMMethod]] = {}
    for key, cls in CAM_METHODS.module_dict.items():
        for name in (key, *getattr(cls, 'aliases', ())):
            table[normalize_name(name)] = cls
    return table


def method_names() -> List[str]:
    """Registered method names (canonical, as registered)."""
    _method_table()
    return sorted(CAM_METHODS.module_dict)


def build_method(name: str, **kwargs) -> BaseCAMMethod:
    """Build a method by case-insensitive name or alias."""
    table = _method_table()
    cls = table.get(normalize_name(name))
    if cls is None:
        raise MethodError(
            f'Unknown CAM method {name!r}. Available: '
            f'{", ".join(method_names())} (names are case- and '
            'dash-insensitive; aliases such as gradcam++ work).'
        )
    return cls(**kwargs)
