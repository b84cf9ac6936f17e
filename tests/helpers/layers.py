"""Checks of a resolver's choice that do not depend on trained weights.

On random weights a Grad-CAM map can be all zero after its ReLU only because
the pre-ReLU map is negative everywhere, which says nothing about the layer.
So these checks test what the layer choice controls: the layer runs on this
input, the class score's gradient there is non-zero for every sample, its
map has the input's spatial layout, and the pre-ReLU map is not constant.
"""

from typing import Tuple

import numpy as np
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.resolvers import resolve_targets
from mmcam_ext.structures import TargetSpec
from mmcam_ext.utils.capture import (
    GridCapture,
    LayerCapture,
    frozen_parameters,
)
from mmcam_ext.utils.model import classifier_logits, get_module


def variance_preserving_init(model: torch.nn.Module) -> torch.nn.Module:
    """Re-draw conv and linear weights with Kaiming-normal (fan-in) init.

    Built without ``init_weights`` (which LeViT does not define either),
    PyTorch's default init shrinks activations by about half per layer: after
    LeViT's convolutional stem all tokens are nearly equal, its subsampling
    attention averages them into one identical vector, and no layer after it
    can have a spatial map. Trained weights never look like that; the checks
    stay as they are. Head weights are re-drawn small afterwards.
    """
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity='linear')
    for p in getattr(model, 'head', torch.nn.Module()).parameters():
        torch.nn.init.normal_(p, std=0.02)
    return model


def layer_map_and_grad(
    model, spec: TargetSpec, x: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first target layer's output and top-1 gradient, as (B, C, h, w).

    Computed here with plain autograd, independently of the engine.
    """
    layer = get_module(model, spec.layers[0])
    grid_module = (
        get_module(model, spec.layout.grid_source)
        if spec.layout.grid_source
        else None
    )
    with (
        frozen_parameters(model),
        GridCapture(grid_module) as grid,
        LayerCapture([layer]) as cap,
        torch.enable_grad(),
    ):
        logits = classifier_logits(model, x)
        assert cap.outputs[0] is not None, 'target layer did not run'
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(score, cap.outputs[0])
    size = tuple(x.shape[-2:])
    act = spec.layout.to_nchw(cap.outputs[0].detach(), grid.grid, size)
    return act, spec.layout.to_nchw(grad, grid.grid, size)


def check_layer_choice(model, x: torch.Tensor, **resolve_kwargs) -> TargetSpec:
    """Run every check of the module docstring; return the spec."""
    bsz, _, height, width = x.shape
    spec = resolve_targets(model, x, **resolve_kwargs)
    act, grad = layer_map_and_grad(model, spec, x)
    assert act.shape[0] == bsz and grad.shape == act.shape
    per_sample = grad.flatten(1).abs().amax(1)
    assert bool((per_sample > 0).all()), f'zero gradient at {spec.layers}'
    h, w = act.shape[-2:]
    assert h * w > 1, f'{spec.layers} gives a {h}x{w} map'
    stride_h, stride_w = height / h, width / w
    assert max(stride_h, stride_w) / min(stride_h, stride_w) < 1.5, (
        f'{h}x{w} map does not follow the {height}x{width} input'
    )
    result = CAMEngine(model, **_engine_kwargs(resolve_kwargs)).explain(x)
    (method,) = result.maps  # the engine's default: Grad-CAM
    cam = result.maps[method]
    assert cam.shape == (bsz, 1, height, width) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    raw = result.raw_maps[method].reshape(bsz, -1)
    assert np.isfinite(raw).all()
    assert (raw.max(1) - raw.min(1) > 0).all(), 'pre-ReLU map is constant'
    assert list(result.target_layers) == spec.layers
    return spec


def _engine_kwargs(resolve_kwargs):
    return {
        k: v
        for k, v in resolve_kwargs.items()
        if k in ('target_layers', 'num_extra_tokens')
    }
