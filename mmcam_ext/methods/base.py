"""The method contract: what the engine asks of every CAM method.

Two kinds of method exist:

* :class:`LayerMapMethod` turns the activations ``A`` and gradients ``G`` of
  a target layer into a signed map. All of them share *one* forward and
  backward pass per batch (the engine computes ``A`` and ``G`` once).
* :class:`FullMapMethod` runs its own passes (masking, ablation, attention)
  and returns finished maps at input resolution.

Names, aliases and building from config dicts live in
:mod:`mmcam_ext.methods.builder`.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from ..structures import TargetSpec
from ..utils.maps import eigen_projection

__all__ = [
    'BaseCAMMethod',
    'LayerMapMethod',
    'FullMapMethod',
    'ExplainContext',
]


@dataclass
class ExplainContext:
    """Everything a method needs to explain one batch.

    Args:
        model (nn.Module): The classifier (eval mode, parameters frozen by
            the engine).
        inputs (torch.Tensor): Preprocessed batch ``(B, 3, H, W)``.
        spec (TargetSpec): Target layers and layout.
        layers (list[nn.Module]): The target modules, in ``spec.layers``
            order.
        targets (torch.Tensor): ``(B, K)`` class indices to explain.
        to_nchw (Callable[[torch.Tensor], torch.Tensor]): Folds a layer
            output into ``(B, C, h, w)`` (grid captured at run time).
        logits (torch.Tensor): Scores of the unmodified forward pass
            ``(B, num_classes)``.
    """

    model: nn.Module
    inputs: torch.Tensor
    spec: TargetSpec
    layers: List[nn.Module]
    targets: torch.Tensor
    to_nchw: Callable[[torch.Tensor], torch.Tensor]
    logits: torch.Tensor


class BaseCAMMethod:
    """A CAM method: what the engine asks of every method.

    Subclass :class:`LayerMapMethod` (implement ``weighted`` or
    ``layer_map``) or :class:`FullMapMethod` (implement ``explain``), never
    this class directly, and register the subclass in ``CAM_METHODS``. The
    engine reads these class attributes; the defaults suit a
    gradient-family method.

    Attributes:
        aliases (tuple[str]): Extra names the method answers to (matched
            case- and punctuation-free). Defaults to ``()``.
        uses_gradients (bool): Whether the method needs gradients of the
            target score. ``False`` lets the engine skip the backward pass
            (EigenCAM, ScoreCAM, attention rollout). Defaults to ``True``.
        needs_layer_gate (bool): For a :class:`FullMapMethod`: whether the
            engine makes the target layers' outputs graph leaves while the
            method runs, so a backward stops there. Methods that need
            gradients *through* the layers (the attention methods) or run
            no backward set it to ``False``. Layer-map methods always share
            the engine's gated pass. Defaults to ``True``.
        class_agnostic (bool): The map does not depend on the explained
            class (EigenCAM, attention rollout, KPCA-CAM, FEM): the engine
            computes it once per sample and repeats it for every target
            column. Defaults to ``False``.
    """

    aliases: Tuple[str, ...] = ()
    uses_gradients: bool = True
    needs_layer_gate: bool = True
    class_agnostic: bool = False

    @property
    def name(self) -> str:
        """The registered name (the class name)."""
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
    """A method that runs its own passes and returns finished maps.

    Test-time augmentation (``aug_smooth``) is the engine's: it calls
    :meth:`explain` once per augmented pass and averages. See
    :class:`BaseCAMMethod` for ``needs_layer_gate``.
    """

    def explain(
        self, ctx: ExplainContext, k: int, eigen_smooth: bool
    ) -> torch.Tensor:
        """Explain one target column of a batch.

        Args:
            ctx (ExplainContext): The batch, its target layers and logits.
            k (int): Column of ``ctx.targets`` to explain.
            eigen_smooth (bool): Project on the first principal component
                where the method has a layer map; ignored otherwise.

        Returns:
            torch.Tensor: Maps ``(B, H, W)`` in ``[0, 1]`` at input
            resolution.
        """
        raise NotImplementedError
