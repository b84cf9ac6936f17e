"""Pooled-head fast path: same maps as the general path, and detection.

The general path (``fast_path=False``) backpropagates from the class score
through the whole head *and* the pooling to the target layer's output; the
fast path uses ``dy/dp / (h*w)`` from a backward through the head alone.
They must agree on every CNN family where the fast path is taken, and the
detection must refuse layers where the shortcut would be wrong.
"""

import logging

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from torch import nn

from mmcam_ext import CAMEngine
from mmcam_ext.apis.pooled_head import PooledHead
from tests.helpers.grad_cam import GRADIENT_FAMILY
from tests.helpers.models import build_classifier

# One model per CNN family whose resolver layer ends in GAP + linear head.
POOLED = [
    'resnet18_8xb32_in1k',
    'mobilenet-v2_8xb32_in1k',
    'efficientnet-b0_3rdparty_8xb32_in1k',
    'regnetx-400mf_8xb128_in1k',
    'densenet121_3rdparty_in1k',
]


def _inputs(batch=3, size=(96, 112)):
    torch.manual_seed(1)
    return torch.randn(batch, 3, *size)


def _build(name):
    torch.manual_seed(0)
    return build_classifier(name)


@pytest.mark.parametrize('name', POOLED)
def test_fast_path_equals_general_path(name):
    model = _build(name)
    x = _inputs()
    fast = CAMEngine(model)
    assert fast.pooled_head(x) is not None, 'expected the fast path'
    a = fast.explain(x, GRADIENT_FAMILY, topk=2)
    b = CAMEngine(model, fast_path=False).explain(x, GRADIENT_FAMILY, topk=2)
    np.testing.assert_array_equal(a.targets, b.targets)
    np.testing.assert_allclose(a.pred_scores, b.pred_scores, atol=1e-6)
    np.testing.assert_allclose(a.target_scores, b.target_scores, atol=1e-6)
    for method in GRADIENT_FAMILY:
        np.testing.assert_allclose(
            a.maps[method], b.maps[method], atol=1e-5, err_msg=method
        )
        scale = np.abs(b.raw_maps[method]).max()
        np.testing.assert_allclose(
            a.raw_maps[method] / scale,
            b.raw_maps[method] / scale,
            atol=1e-5,
            err_msg=method,
        )
        np.testing.assert_array_equal(a.blank[method], b.blank[method])


def test_fast_path_with_given_targets_and_eigen_smooth():
    model = _build('resnet18_8xb32_in1k')
    x = _inputs()
    kw = dict(targets=[[3, 7], [1, 2], [0, 999]], eigen_smooth=True)
    a = CAMEngine(model).explain(x, ['gradcam', 'layercam'], **kw)
    b = CAMEngine(model, fast_path=False).explain(
        x, ['gradcam', 'layercam'], **kw
    )
    for method in a.maps:
        np.testing.assert_allclose(a.maps[method], b.maps[method], atol=1e-5)


def test_fast_path_runs_one_inference_forward_and_no_backbone_graph():
    """Per batch one forward, under no_grad (no graph through the
    backbone); the one-sample forwards (layer choice, detection) run once
    per input size."""
    model = _build('resnet18_8xb32_in1k')
    seen = []
    handle = model.backbone.layer1.register_forward_hook(
        lambda m, a, out: seen.append(
            (len(out), torch.is_grad_enabled() or out.requires_grad)
        )
    )
    engine = CAMEngine(model)
    try:
        engine.explain(_inputs(), ['gradcam', 'gradcam++'])
        first = list(seen)
        engine.explain(_inputs(), ['gradcam', 'gradcam++'])
    finally:
        handle.remove()
    assert first == [(1, False), (1, False), (3, False)]
    assert seen[len(first) :] == [(3, False)]


def _detect(model, layers=None):
    engine = CAMEngine(model, layers)
    x = _inputs(1)
    return PooledHead.detect(model, engine.spec_for(x), x)


@pytest.mark.parametrize(
    'name, layers, why',
    [
        # class-token ViT: tokens, and the head reads the cls token
        ('deit-tiny_4xb256_in1k', None, 'one NCHW target layer'),
        # an inner stage: more layers run between it and the pooling
        ('resnet18_8xb32_in1k', ['backbone.layer3'], "backbone's last"),
        (
            'resnet18_8xb32_in1k',
            ['backbone.layer4.1.conv2'],
            "backbone's last",
        ),
        # ConvNeXt pools inside the backbone and normalises after pooling:
        # no neck, so the head's input is not the spatial mean of the layer.
        ('convnext-tiny_32xb128_in1k', None, 'backbone -> neck -> head'),
    ],
)
def test_detection_refuses_non_pooled_layers(name, layers, why):
    path, reason = _detect(_build(name), layers)
    assert path is None and why in reason


class _MaxPoolNeck(nn.Module):
    """Global max pooling: pooled, but the gradient is not uniform."""

    def forward(self, inputs):
        return tuple(x.amax((2, 3)) for x in inputs)


class _SquareMeanNeck(nn.Module):
    """Mean of squares... of a ReLU map scaled to the mean's value: the
    values can match the mean only by accident; the Jacobian never does."""

    def forward(self, inputs):
        return tuple(
            x.mean((2, 3)) + 1e-3 * x.pow(2).mean((2, 3)) for x in inputs
        )


@pytest.mark.parametrize(
    'neck, why',
    [
        (_MaxPoolNeck(), 'not the spatial mean'),
        (_SquareMeanNeck(), 'not the spatial mean'),
    ],
)
def test_detection_refuses_other_pooling(neck, why):
    model = _build('resnet18_8xb32_in1k')
    model.neck = neck
    path, reason = _detect(model)
    assert path is None and why in reason
    # ... and the engine silently takes the general path, still correct.
    x = _inputs()
    a = CAMEngine(model).explain(x, ['gradcam'])
    b = CAMEngine(model, fast_path=False).explain(x, ['gradcam'])
    np.testing.assert_array_equal(a.maps['GradCAM'], b.maps['GradCAM'])


def test_detection_checks_the_jacobian_not_only_the_value(monkeypatch):
    """A neck whose output equals the mean but whose gradient is not
    uniform (a straight-through trick) is refused by the Jacobian check."""

    class _Trick(nn.Module):
        def forward(self, inputs):
            out = []
            for x in inputs:
                mean = x.mean((2, 3))
                peak = x.amax((2, 3))
                out.append(mean + (peak - peak.detach()))  # value = mean
            return tuple(out)

    model = _build('resnet18_8xb32_in1k')
    model.neck = _Trick()
    path, reason = _detect(model)
    assert path is None and 'gradient is not uniform' in reason


def test_timm_classifier_takes_the_general_path():
    from mmpretrain.models import TimmClassifier

    model = TimmClassifier(model_name='resnet18', num_classes=5).eval()
    engine = CAMEngine(model)
    x = _inputs(2, (64, 64))
    assert engine.pooled_head(x) is None
    res = engine.explain(x, ['gradcam'])
    assert res.maps['GradCAM'].shape == (2, 1, 64, 64)


def test_the_chosen_path_is_logged_at_debug_level(caplog):
    logger = MMLogger.get_current_instance()
    records = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    handler = _Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        CAMEngine(_build('resnet18_8xb32_in1k')).explain(
            _inputs(1), ['gradcam']
        )
        CAMEngine(_build('deit-tiny_4xb256_in1k')).explain(
            _inputs(1, (64, 64)), ['gradcam']
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    paths = [(lvl, msg) for lvl, msg in records if ' path' in msg]
    assert [lvl for lvl, _ in paths] == [logging.DEBUG, logging.DEBUG]
    assert 'pooled-head fast path' in paths[0][1]
    assert 'general path (needs one NCHW target layer)' in paths[1][1]
