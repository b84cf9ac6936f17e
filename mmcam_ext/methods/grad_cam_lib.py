"""Adapters for pytorch-grad-cam methods that need their own passes.

This module is the only place that imports ``pytorch_grad_cam``, and only
when one of its methods is built: grad-cam is optional
(``pip install "mmcam_ext[gradcam]"``). The native engine (the gradient
methods, ScoreCAM, the attention methods) never needs it. Releases 1.4.0 to
1.5.7 are supported; a method whose class the installed release lacks is
refused when it is built, naming the release that adds it. The engine
freezes parameters and makes the target layers' outputs require grad, so
these methods leave no parameter gradients behind.
"""

import importlib
import importlib.metadata
import importlib.util
from types import ModuleType
from typing import Dict, List, Optional

import torch

from ..errors import MethodError
from ..registry import CAM_METHODS
from ..utils.model import ClassifierLogits
from .base import ExplainContext, FullMapMethod

__all__ = [
    'GRAD_CAM_REQUIREMENT',
    'FIRST_RELEASE',
    'grad_cam_version',
    'grad_cam_library',
    'LibScoreCAM',
    'AblationCAM',
    'FullGrad',
    'KPCACAM',
    'ShapleyCAM',
    'FinerCAM',
    'RandomCAM',
    'FEM',
    'SegEigenCAM',
]

#: What to install for these methods (as ``requirements/gradcam.txt``).
GRAD_CAM_REQUIREMENT = 'grad-cam>=1.4,<1.6'
#: The first grad-cam release holding each class used here that 1.4.0
#: lacks, read from the sdists of 1.4.0, 1.4.8 and 1.5.0 to 1.5.7 (there is
#: no 1.5.6). The rest (AblationCAM, FullGrad, RandomCAM, ScoreCAM) are in
#: every supported release.
FIRST_RELEASE: Dict[str, str] = {
    'KPCA_CAM': '1.5.4',
    'ShapleyCAM': '1.5.5',
    'FinerCAM': '1.5.5',
    'FEM': '1.5.5',
    'SegEigenCAM': '1.5.7',
}
_NATIVE = (
    'the gradient methods (gradcam, gradcam++, xgradcam, hirescam, '
    'gradcamelementwise, layercam, eigencam, eigengradcam), scorecam and the '
    'attention methods'
)


def grad_cam_version() -> Optional[str]:
    """Version of the installed ``grad-cam`` distribution.

    Returns:
        str | None: E.g. ``'1.4.8'``; None when it is not installed.
    """
    try:
        return importlib.metadata.version('grad-cam')
    except importlib.metadata.PackageNotFoundError:
        return None


def grad_cam_library(method: str, lib_name: str) -> ModuleType:
    """Import ``pytorch_grad_cam`` for ``method``, checked to hold a class.

    Args:
        method (str): Our method's name, for the message.
        lib_name (str): The class of ``pytorch_grad_cam`` it runs.

    Returns:
        ModuleType: The ``pytorch_grad_cam`` module.

    Raises:
        MethodError: grad-cam is not installed, does not import, or is a
            release without ``lib_name`` (the message names the release
            that adds it and the command that installs it).
    """
    if importlib.util.find_spec('pytorch_grad_cam') is None:
        raise MethodError(
            f'{method} runs pytorch-grad-cam, which is not installed. '
            f'Install it with `pip install "{GRAD_CAM_REQUIREMENT}"` (or '
            f'`pip install "mmcam_ext[gradcam]"`); {_NATIVE} do not need '
            'it.'
        )
    try:
        module = importlib.import_module('pytorch_grad_cam')
    except ImportError as err:
        raise MethodError(
            f'{method} runs pytorch-grad-cam; grad-cam '
            f'{grad_cam_version()} is installed but does not import: {err}'
        ) from err
    if not hasattr(module, lib_name):
        added = FIRST_RELEASE.get(lib_name, 'a later release')
        raise MethodError(
            f'{method} needs pytorch_grad_cam.{lib_name}, which the installed '
            f'grad-cam {grad_cam_version()} lacks; it was added in grad-cam '
            f'{added}. Upgrade with `pip install "grad-cam>={added},<1.6"`.'
        )
    return module


class GradCamLibMethod(FullMapMethod):
    """Runs ``pytorch_grad_cam.<lib_name>`` with one target per sample.

    pytorch-grad-cam zips targets with outputs, so a single target would
    explain only sample 0; one target per sample is always passed.
    """

    lib_name: str = ''
    token_layouts: bool = True  # can it fold token outputs?

    def __init__(self) -> None:
        # Refuse at build time (config, CLI) rather than mid-run.
        self.library()

    def library(self) -> ModuleType:
        """``pytorch_grad_cam``, checked to hold this method's class.

        Returns:
            ModuleType: The module.
        """
        return grad_cam_library(self.name, self.lib_name)

    def build(self, ctx: ExplainContext):
        """The library's CAM object for this batch's model and layers.

        Args:
            ctx (ExplainContext): The batch being explained.

        Returns:
            BaseCAM: The ``pytorch_grad_cam.<lib_name>`` instance, its hooks
            on.
        """
        cls = getattr(self.library(), self.lib_name)
        return cls(
            ClassifierLogits(ctx.model),
            ctx.layers,
            reshape_transform=ctx.to_nchw,
        )

    def make_targets(self, ctx: ExplainContext, k: int) -> List:
        """The library's targets for column ``k``: one per sample.

        Args:
            ctx (ExplainContext): The batch being explained.
            k (int): Column of ``ctx.targets``.

        Returns:
            list: One ``ClassifierOutputTarget`` per sample.
        """
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        return [ClassifierOutputTarget(int(c)) for c in ctx.targets[:, k]]

    def explain(
        self, ctx: ExplainContext, k: int, eigen_smooth: bool
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
        super().__init__()
        self.mask_batch_size = mask_batch_size

    def build(self, ctx):
        """The library's ScoreCAM, ``mask_batch_size`` masks per pass."""
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
        super().__init__()
        self.mask_batch_size = mask_batch_size

    def build(self, ctx):
        """The library's AblationCAM with the ablation layer of the layout
        (``AblationLayerVit`` for tokens and channels-last maps)."""
        library = self.library()
        from pytorch_grad_cam.ablation_layer import (
            AblationLayer,
            AblationLayerVit,
        )

        # AblationLayerVit ablates the channel (last) axis of (B, L, C)
        # tokens, so it does not depend on the token count or grid.
        tokens = ctx.spec.layout.kind != 'nchw'
        return library.AblationCAM(
            ClassifierLogits(ctx.model),
            ctx.layers,
            reshape_transform=ctx.to_nchw,
            ablation_layer=AblationLayerVit() if tokens else AblationLayer(),
            batch_size=self.mask_batch_size,
        )

    def explain(self, ctx, k, eigen_smooth):
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
            return super().explain(ctx, k, eigen_smooth)
        finally:
            for parent, attr, layer in slots:
                parent._modules[attr] = layer


@CAM_METHODS.register_module()
class FullGrad(GradCamLibMethod):
    """Input gradient plus bias gradients of every conv/BN layer."""

    lib_name = 'FullGrad'
    needs_layer_gate = False

    def build(self, ctx):
        """The library's FullGrad; it picks its own layers (conv/BN)."""
        return self.library().FullGrad(ClassifierLogits(ctx.model), [])


@CAM_METHODS.register_module()
class KPCACAM(GradCamLibMethod):
    """Kernel-PCA projection of the activations (class-agnostic)."""

    lib_name = 'KPCA_CAM'
    aliases = ('kpca_cam', 'kpca')
    uses_gradients = False
    class_agnostic = True


@CAM_METHODS.register_module()
class ShapleyCAM(GradCamLibMethod):
    """Gradient plus Hessian-vector product weighting (needs NCHW)."""

    lib_name = 'ShapleyCAM'
    token_layouts = False
    # It differentiates w.r.t. the input, so the graph must not be cut at
    # the target layer.
    needs_layer_gate = False

    def explain(self, ctx, k, eigen_smooth):
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
            return super().explain(ctx, k, eigen_smooth)
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
    class_agnostic = True


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
        """Per sample, the target against its three closest classes."""
        from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

        logits = ctx.logits.detach()
        targets = []
        for i, c in enumerate(ctx.targets[:, k].tolist()):
            order = torch.argsort((logits[i] - logits[i, c]).abs())
            others = [int(o) for o in order.tolist() if o != c][:3]
            targets.append(FinerWeightedTarget(int(c), others, 1.0))
        return targets
