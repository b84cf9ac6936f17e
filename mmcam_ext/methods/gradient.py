"""Gradient- and activation-based methods computed from one shared pass.

Each class holds only its weighting rule, written in torch and batched; the
engine supplies activations ``A`` and gradients ``G`` of the target layer in
``(B, C, h, w)``. The formulas follow pytorch-grad-cam 1.5.7 exactly (tests
compare against it and against hand-written versions).
"""

from typing import Optional

import torch

from ..registry import CAM_METHODS
from ..utils.maps import eigen_projection
from .base import LayerMapMethod

__all__ = [
    'GRADIENT_METHODS',
    'GradCAM',
    'GradCAMPlusPlus',
    'XGradCAM',
    'HiResCAM',
    'GradCAMElementWise',
    'LayerCAM',
    'EigenCAM',
    'EigenGradCAM',
]

_SPATIAL = (2, 3)


@CAM_METHODS.register_module()
class GradCAM(LayerMapMethod):
    """Channel weights = spatial mean of the gradient (Selvaraju et al.)."""

    aliases = ('grad_cam',)

    def weighted(self, acts, grads):
        return grads.mean(dim=_SPATIAL, keepdim=True) * acts


@CAM_METHODS.register_module()
class GradCAMPlusPlus(LayerMapMethod):
    """Weights from alpha = g² / (2g² + ΣA·g³) on positive gradients."""

    aliases = ('gradcam++', 'gradcampp', 'grad_cam_plus_plus')

    def weighted(self, acts, grads):
        g2 = grads.pow(2)
        g3 = g2 * grads
        sum_acts = acts.sum(dim=_SPATIAL, keepdim=True)
        aij = g2 / (2 * g2 + sum_acts * g3 + 1e-6)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        weights = (grads.clamp(min=0) * aij).sum(dim=_SPATIAL, keepdim=True)
        return weights * acts


@CAM_METHODS.register_module()
class XGradCAM(LayerMapMethod):
    """Weights = Σ(G·A) / ΣA (axiom-based Grad-CAM)."""

    def weighted(self, acts, grads):
        sum_acts = acts.sum(dim=_SPATIAL, keepdim=True)
        weights = (grads * acts / (sum_acts + 1e-7)).sum(
            dim=_SPATIAL, keepdim=True
        )
        return weights * acts


@CAM_METHODS.register_module()
class HiResCAM(LayerMapMethod):
    """Element-wise G·A summed over channels (faithful to the logit)."""

    def weighted(self, acts, grads):
        return grads * acts


@CAM_METHODS.register_module()
class GradCAMElementWise(LayerMapMethod):
    """ReLU(G·A) summed over channels."""

    aliases = ('gradcam_elementwise',)

    def weighted(self, acts, grads):
        return (grads * acts).clamp(min=0)


@CAM_METHODS.register_module()
class LayerCAM(LayerMapMethod):
    """ReLU(G)·A summed over channels (Jiang et al.)."""

    def weighted(self, acts, grads):
        return grads.clamp(min=0) * acts


@CAM_METHODS.register_module()
class EigenCAM(LayerMapMethod):
    """First principal component of the activations (class-agnostic)."""

    uses_gradients = False
    class_agnostic = True

    def layer_map(self, acts, grads: Optional[torch.Tensor], eigen_smooth):
        return eigen_projection(acts)


@CAM_METHODS.register_module()
class EigenGradCAM(LayerMapMethod):
    """First principal component of G·A (class-specific)."""

    def layer_map(self, acts, grads, eigen_smooth):
        return eigen_projection(grads * acts)


#: The layer-map methods of this module: all of them, requested together,
#: share the engine's one forward and one backward to the target layer.
GRADIENT_METHODS = tuple(
    cls.__name__
    for cls in (
        GradCAM,
        GradCAMPlusPlus,
        XGradCAM,
        HiResCAM,
        GradCAMElementWise,
        LayerCAM,
        EigenCAM,
        EigenGradCAM,
    )
)
