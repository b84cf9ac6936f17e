"""In-process speed figures: floor ratio, method grid, EigenCAM.

The *floor* is the least work any gradient CAM needs: one forward and the
backward of the target scores down to the target layer's output, with every
parameter frozen (no weight gradients). Our engine and pytorch-grad-cam are
timed against it, interleaved, on the same model, inputs and targets.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn

from mmcam_ext.apis.cam_engine import CAMEngine
from mmcam_ext.utils.capture import LayerCapture, eval_mode, frozen_parameters
from mmcam_ext.utils.model import (
    ClassifierLogits,
    classifier_logits,
    get_module,
)

from .timing import interleaved_medians

__all__ = [
    'ModelCase',
    'SPEED_MODELS',
    'GRID_METHODS',
    'SpeedBench',
    'floor_pass',
    'pgc_call',
    'floor_ratios',
    'grid_and_eigen',
]

#: Six gradient methods derived from one forward/backward.
GRID_METHODS = (
    'GradCAM',
    'GradCAMPlusPlus',
    'XGradCAM',
    'HiResCAM',
    'GradCAMElementWise',
    'LayerCAM',
)

CPU = torch.device('cpu')


@dataclass(frozen=True)
class ModelCase:
    """A model the speed rows run on (random weights, MMPretrain config).

    Args:
        label: Name printed in tables.
        config: ``mmpretrain.get_model`` name.
        size: Square input side in pixels.
    """

    label: str
    config: str
    size: int = 224


SPEED_MODELS: Dict[str, ModelCase] = {
    'resnet50': ModelCase('ResNet-50', 'resnet50_8xb32_in1k'),
    'deit-tiny': ModelCase('DeiT-tiny', 'deit-tiny_4xb256_in1k'),
    'vit-base': ModelCase('ViT-B/16', 'deit-base_16xb64_in1k'),
    # Small stand-ins for tests of the benchmark itself.
    'resnet18-64': ModelCase('ResNet-18@64', 'resnet18_8xb32_in1k', 64),
    'deit-tiny-64': ModelCase('DeiT-tiny@64', 'deit-tiny_4xb256_in1k', 64),
}


def floor_pass(
    model: nn.Module,
    layers: Sequence[nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> None:
    """The floor: forward + backward of the target scores to the layers."""
    with eval_mode(model), frozen_parameters(model):
        with LayerCapture(layers) as cap, torch.enable_grad():
            logits = classifier_logits(model, inputs)
            score = logits.gather(1, targets).sum()
            torch.autograd.grad(score, cap.outputs)


def pgc_call(cam, inputs: torch.Tensor, targets: torch.Tensor):
    """pytorch-grad-cam's call with one target per sample."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return cam(inputs, [ClassifierOutputTarget(int(c)) for c in targets[:, 0]])


class SpeedBench:
    """One model, one batch: callables for every candidate, same inputs.

    Args:
        case: The model.
        batch: Batch size.
        device: Where it runs.
        seed: Seeds weights and inputs.
        model: Reuse this built model (e.g. another bench's) instead of
            building one.
    """

    def __init__(
        self,
        case: ModelCase,
        batch: int,
        device: torch.device = CPU,
        seed: int = 0,
        model: Optional[nn.Module] = None,
    ) -> None:
        from mmpretrain import get_model

        torch.manual_seed(seed)
        self.case = case
        self.device = device
        if model is None:
            model = get_model(case.config, pretrained=False).to(device)
        self.model = model.eval()
        self.engine = CAMEngine(self.model)
        self.inputs = torch.randn(
            batch, 3, case.size, case.size, device=device
        )
        self.spec = self.engine.spec_for(self.inputs)
        self.layers = [get_module(self.model, n) for n in self.spec.layers]
        with torch.no_grad():
            logits = classifier_logits(self.model, self.inputs)
        self.targets = logits.argmax(-1, keepdim=True)
        self._pgc: Dict[str, object] = {}

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """Token or map output -> ``(B, C, h, w)`` (pytorch-grad-cam's
        ``reshape_transform``)."""
        return self.spec.layout.to_nchw(x, None, tuple(self.inputs.shape[-2:]))

    def forward(self) -> None:
        """A plain inference forward (no graph): the floor's lower bound."""
        with torch.no_grad():
            classifier_logits(self.model, self.inputs)

    def floor(self) -> None:
        floor_pass(self.model, self.layers, self.inputs, self.targets)

    def ours(self, methods: Sequence[str] = ('GradCAM',)):
        return self.engine.explain(
            self.inputs, list(methods), targets=self.targets.cpu().numpy()
        )

    def pgc(self, method: str = 'GradCAM'):
        """pytorch-grad-cam as users run it: weights keep requires_grad."""
        return pgc_call(self.pgc_cam(method), self.inputs, self.targets)

    def pgc_cam(self, method: str):
        if method not in self._pgc:
            import pytorch_grad_cam

            self._pgc[method] = getattr(pytorch_grad_cam, method)(
                ClassifierLogits(self.model),
                self.layers,
                reshape_transform=self.fold,
            )
        return self._pgc[method]

    def release(self) -> None:
        """Remove pytorch-grad-cam's hooks and weight gradients."""
        for cam in self._pgc.values():
            cam.activations_and_grads.release()
        self._pgc.clear()
        self.model.zero_grad(set_to_none=True)

    def time(
        self,
        fns: Dict[str, Callable[[], object]],
        repeats: int,
        warmup: int = 1,
    ) -> Dict[str, float]:
        return interleaved_medians(fns, repeats, warmup, self.device)


def floor_ratios(bench: SpeedBench, repeats: int) -> Dict[str, float]:
    """Seconds of a plain forward, the floor, ours and pytorch-grad-cam
    (GradCAM), interleaved."""
    try:
        return bench.time(
            dict(
                forward=bench.forward,
                floor=bench.floor,
                ours=bench.ours,
                pgc=bench.pgc,
            ),
            repeats,
        )
    finally:
        bench.release()


def grid_and_eigen(bench: SpeedBench, repeats: int) -> Dict[str, float]:
    """Seconds of GradCAM, the 6-method grid and EigenCAM (ours and
    pytorch-grad-cam's EigenCAM), interleaved."""
    fns: Dict[str, Callable[[], object]] = dict(
        gradcam=bench.ours,
        grid=lambda: bench.ours(GRID_METHODS),
        eigencam=lambda: bench.ours(['EigenCAM']),
        pgc_gradcam=bench.pgc,
        pgc_eigencam=lambda: bench.pgc('EigenCAM'),
    )
    try:
        return bench.time(fns, repeats)
    finally:
        bench.release()
