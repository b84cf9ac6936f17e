"""Adapters for pytorch-grad-cam methods that need their own passes.

This module and ``gradient.py`` are the only places that know about
``pytorch_grad_cam``; it is imported lazily, so a GradCAM run does not pay
for it. The engine freezes parameters and makes the target layers' outputs
require grad, so these methods leave no parameter gradients behind.
"""

from typing import List

import torch

from ..registry import CAM_METHODS
from ..utils.model import ClassifierLogits
from .base import ExplainContext, FullMapMethod

__all__ = [
    'LibScoreCAM',
    'AblationCAM',
    'FullGrad',
    'KPCACAM',
    'ShapleyCAM',
    'FinerCAM',
    'RandomCAM',
    'FEM',
]


class GradCamLibMethod(FullMapMethod):
    """Runs ``pytorch_grad_cam.<lib_name>`` with one target per sample.

    pytorch-grad-cam zips targets with outputs, so a single target would
    explain only sample 0; one target per sample is always passed.
    """

    lib_name: str = ''
    needs_layer_gate: bool = True
    token_layouts: bool = True  # can it fold token outputs?

    def build(self, ctx: ExplainContext):
        import pytorch_grad_cam

        cls = getattr(pytorch_grad_cam, self.lib_name)
        return cls(
            ClassifierLogits(ctx.model),
            ctx.layers,
            reshape_transform=ctx.to_nchw,
        )

    def make_targets(self, ctx: ExplainContext, k: int) -> List:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        return [ClassifierOutputTarget(int(c)) for c in ctx.targets[:, k]]

    def explain(
        self, ctx: ExplainContext, k: int, aug_smooth: bool, eigen_smooth: bool
    ) -> torch.Tensor:
        if not self.token_layouts and ctx.spec.layout.kind != 'nchw':
            raise ValueError(
                f'{self.name} supports only (B, C, H, W) target layers; '
                f'{ctx.spec.layers} hold tokens. Use GradCAM, HiResCAM or '
                'the attention methods for this backbone.'
            )
        cam = self.build(ctx)
        try:
            maps = cam(
                ctx.inputs,
                self.make_targets(ctx, k),
                eigen_smooth=eigen_smooth,
            )
        finally:
            handles = getattr(cam, 'base_cam', cam).activations_and_grads
            handles.release()
        return torch.as_tensor(maps, dtype=torch.float32)


class LibScoreCAM(GradCamLibMethod):
    """pytorch-grad-cam's ScoreCAM, kept unregistered as a reference.

    The name ``'ScoreCAM'`` builds the native, batched
    :class:`mmcam_ext.methods.score_cam.ScoreCAM` (same maps, far less
    memory); tests and ``tools/benchmark.py`` compare the two.
    """

    lib_name = 'ScoreCAM'
    uses_gradients = False

    def __init__(self, mask_batch_size: int = 32) -> None:
        self.mask_batch_size = mask_batch_size

    def build(self, ctx):
        cam = super().build(ctx)
        cam.batch_size = self.mask_batch_size
        return cam


@CAM_METHODS.register_module()
class AblationCAM(GradCamLibMethod):
    """Channel weights from the score drop when a channel is zeroed.

    Args:
        mask_batch_size (int): Ablated copies per forward pass (memory vs
            speed). Defaults to 32.
    """

    lib_name = 'AblationCAM'
    uses_gradients = False

    def __init__(self, mask_batch_size: int = 32) -> None:
        self.mask_batch_size = mask_batch_size

    def build(self, ctx):
        import pytorch_grad_cam
        from pytorch_grad_cam.ablation_layer import (
            AblationLayer,
            AblationLayerVit,
        )

        # AblationLayerVit ablates the channel (last) axis of (B, L, C)
        # tokens, so it does not depend on the token count or grid.
        tokens = ctx.spec.layout.kind != 'nchw'
        return pytorch_grad_cam.AblationCAM(
            ClassifierLogits(ctx.model),
            ctx.layers,
            reshape_transform=ctx.to_nchw,
            ablation_layer=AblationLayerVit() if tokens else AblationLayer(),
            batch_size=self.mask_batch_size,
        )

    def explain(self, ctx, k, aug_smooth, eigen_smooth):
        """Put the target layers back even if a masked forward raises.

        pytorch-grad-cam swaps each target layer for its ablation layer and
        swaps it back without ``try/finally``; an error would leave the
        model altered.
        """
        slots = []
        for name in ctx.spec.layers:
            parent_name, _, attr = name.rpartition('.')
            parent = ctx.model.get_submodule(parent_name)
            slots.append((parent, attr, parent._modules[attr]))
        try:
            return super().explain(ctx, k, aug_smooth, eigen_smooth)
        finally:
            for parent, attr, layer in slots:
                parent._modules[attr] = layer


@CAM_METHODS.register_module()
class FullGrad(GradCamLibMethod):
    """Input gradient plus bias gradients of every conv/BN layer."""

    lib_name = 'FullGrad'
    needs_layer_gate = False

    def build(self, ctx):
        import pytorch_grad_cam

        return pytorch_grad_cam.FullGrad(ClassifierLogits(ctx.model), [])


@CAM_METHODS.register_module()
class KPCACAM(GradCamLibMethod):
    """Kernel-PCA projection of the activations (class-agnostic)."""

    lib_name = 'KPCA_CAM'
    aliases = ('kpca_cam', 'kpca')
    uses_gradients = False


@CAM_METHODS.register_module()
class ShapleyCAM(GradCamLibMethod):
    """Gradient plus Hessian-vector product weighting (needs NCHW)."""

    lib_name = 'ShapleyCAM'
    token_layouts = False
    # It differentiates w.r.t. the input, so the graph must not be cut at
    # the target layer.
    needs_layer_gate = False

    def explain(self, ctx, k, aug_smooth, eigen_smooth):
        """Run with weights requiring grad.

        Its Hessian-vector product differentiates the layer gradient, which
        is a constant (no ``grad_fn``) when the weights after the layer are
        frozen. The engine's ``frozen_parameters`` restores flags and
        ``.grad`` afterwards.
        """
        params = list(ctx.model.parameters())
        for p in params:
            p.requires_grad_(True)
        try:
            return super().explain(ctx, k, aug_smooth, eigen_smooth)
        finally:
            for p in params:
                p.requires_grad_(False)
                p.grad = None


@CAM_METHODS.register_module()
class RandomCAM(GradCamLibMethod):
    """Random channel weights: a baseline for sanity checks."""

    lib_name = 'RandomCAM'


@CAM_METHODS.register_module()
class FEM(GradCamLibMethod):
    """Feature Explanation Method: activations above a k-sigma threshold."""

    lib_name = 'FEM'
    uses_gradients = False


@CAM_METHODS.register_module()
class SegEigenCAM(GradCamLibMethod):
    """First principal component of |G|·A with sign correction."""

    lib_name = 'SegEigenCAM'
    aliases = ('seg_eigen_cam',)


@CAM_METHODS.register_module()
class FinerCAM(GradCamLibMethod):
    """Grad-CAM of the target logit minus its most similar classes.

    The comparison classes are the three whose scores are closest to the
    target's, as pytorch-grad-cam picks them for the predicted class.
    """

    lib_name = 'FinerCAM'

    def make_targets(self, ctx, k):
        from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

        logits = ctx.logits.detach()
        targets = []
        for i, c in enumerate(ctx.targets[:, k].tolist()):
            order = torch.argsort((logits[i] - logits[i, c]).abs())
            others = [int(o) for o in order.tolist() if o != c][:3]
            targets.append(FinerWeightedTarget(int(c), others, 1.0))
        return targets
