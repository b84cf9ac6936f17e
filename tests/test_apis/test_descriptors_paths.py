"""Evidence descriptors on every path, against plain torch.

The reference never calls the engine, the capture classes or
``evidence_descriptors``: a forward hook on the target layer in a plain
forward, Grad-CAM weights written out (the mean gradient over space from a
plain autograd pass), ``relu(sum_c w_c A_c)``, the CAM-weighted mean of
``A`` with ``einsum``, then the fixed projection (``projection``) or zero
padding and the map pooled to the layout grid.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcam_ext import CAMEngine
from mmcam_ext.apis import cam_engine, capture_sources
from mmcam_ext.utils.descriptors import (
    DESCRIPTOR_DIM,
    EVIDENCE_DIM,
    LAYOUT_SIDE,
    projection,
)
from tests.helpers.models import build_classifier

VIT = 'deit-tiny_4xb256_in1k'


@pytest.fixture(scope='module')
def cnn():
    torch.manual_seed(0)
    return build_classifier('resnet18_8xb32_in1k')


@pytest.fixture(scope='module')
def vit():
    torch.manual_seed(0)
    return build_classifier(VIT)


def _fold(out, extra):
    """``(B, C, h, w)`` of a layer output: as is for a CNN; tokens minus
    the extra ones on the 4x5 grid of a 64x80 input."""
    if out.ndim == 4:
        return out
    t = out[:, extra:, :]
    return t.reshape(t.shape[0], 4, 5, t.shape[2]).permute(0, 3, 1, 2)


def _layer_output(model, layer, x, grad):
    """The layer's output in a plain forward (kept in the graph)."""
    kept = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, a, out: kept.append(out)
    )
    try:
        with torch.set_grad_enabled(grad):
            logits = model(x, mode='tensor')
    finally:
        handle.remove()
    return kept[-1], logits


def _reference(acts, cam):
    """Descriptor of ``acts (B, C, h, w)`` under ``cam (B, H, W)``."""
    h, w = acts.shape[-2:]
    full = cam = cam.clamp(min=0)
    if cam.shape[-2:] != (h, w):
        cam = F.adaptive_avg_pool2d(cam[:, None], (h, w))[:, 0]
    feats = torch.einsum('bchw,bhw->bc', acts, cam)
    feats = feats / cam.sum((1, 2))[:, None]
    mat = projection(acts.shape[1])
    feats = feats @ mat if mat is not None else feats
    feats = F.pad(feats, (0, EVIDENCE_DIM - feats.shape[1]))
    layout = F.adaptive_avg_pool2d(full[:, None], LAYOUT_SIDE)[:, 0]
    layout = layout.flatten(1) / layout.flatten(1).max(1, keepdim=True)[0]
    return torch.cat([feats, layout], 1)


def _gradcam_reference(model, layer, x, targets, extra=0):
    """``(B, K, D)`` Grad-CAM descriptors from plain autograd."""
    out, logits = _layer_output(model, layer, x, grad=True)
    acts = _fold(out, extra).detach()
    cols = []
    for k in range(targets.shape[1]):
        score = logits.gather(1, torch.as_tensor(targets[:, k : k + 1]))
        (grad,) = torch.autograd.grad(score.sum(), out, retain_graph=True)
        weights = _fold(grad, extra).mean((2, 3))
        cam = torch.relu(torch.einsum('bc,bchw->bhw', weights, acts))
        cols.append(_reference(acts, cam))
    return torch.stack(cols, 1).numpy()


def test_cnn_fast_path_descriptors_equal_plain_torch(cnn):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 128, 128)
    engine = CAMEngine(cnn)
    assert engine.pooled_head(x) is not None, 'expected the fast path'
    res = engine.explain(x, ['gradcam'], topk=2, descriptors=True)
    assert not res.blank['GradCAM'].any()  # a blank map says little
    targets = res.targets
    desc = res.descriptors['GradCAM']
    assert desc.shape == (2, 2, DESCRIPTOR_DIM) and desc.dtype == np.float32
    layer = res.target_layers[-1]
    ref = _gradcam_reference(cnn, layer, x, targets)
    np.testing.assert_allclose(desc, ref, rtol=1e-4, atol=1e-5)
    # two classes, two different descriptors
    assert not np.allclose(desc[:, 0], desc[:, 1], atol=1e-3)


def test_vit_general_and_in_loop_descriptors_equal_plain_torch(vit):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 80)
    targets = np.array([[3, 7], [100, 5]])
    engine = CAMEngine(vit)
    spec = engine.spec_for(x)
    extra = spec.layout.num_extra_tokens
    ref = _gradcam_reference(vit, spec.layers[-1], x, targets, extra)
    general = engine.explain(x, ['gradcam'], targets, descriptors=True)
    assert not general.blank['GradCAM'].any()
    np.testing.assert_allclose(
        general.descriptors['GradCAM'], ref, rtol=1e-4, atol=1e-5
    )
    # The hook's machinery: a capture in someone else's no-grad forward.
    engine.prepare_capture(x[:1], ['gradcam'])
    capture = engine.loop_capture_for(['gradcam'])
    assert capture is not None
    with torch.no_grad():
        vit(x, mode='tensor')
    loop = engine.explain_capture(
        capture,
        ['gradcam'],
        targets[[1]],
        [1],
        inputs=lambda: pytest.fail('the general path ran'),
        descriptors=True,
    )
    assert engine.last_path.startswith('in-loop gradients')
    np.testing.assert_allclose(
        loop.descriptors['GradCAM'], ref[[1]], rtol=1e-4, atol=1e-5
    )


def test_rollout_descriptors_pool_the_final_map(vit):
    """A full-map method: the last target layer's activations of the
    scoring forward, weighted by the final map pooled to its grid."""
    x = torch.randn(2, 3, 64, 80)
    engine = CAMEngine(vit)
    spec = engine.spec_for(x)
    res = engine.explain(x, ['rollout'], topk=2, descriptors=True)
    out, _ = _layer_output(vit, spec.layers[-1], x, grad=False)
    acts = _fold(out, spec.layout.num_extra_tokens)
    maps = torch.as_tensor(res.maps['AttentionRollout'])
    ref = torch.stack([_reference(acts, maps[:, k]) for k in range(2)], 1)
    np.testing.assert_allclose(
        res.descriptors['AttentionRollout'], ref.numpy(), rtol=1e-4, atol=1e-5
    )


def test_descriptors_are_off_by_default(cnn, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        raise AssertionError('descriptors computed although not asked for')

    monkeypatch.setattr(capture_sources, 'evidence_descriptors', spy)
    monkeypatch.setattr(cam_engine, 'evidence_descriptors', spy)
    x = torch.randn(1, 3, 64, 64)
    for fast_path in (True, False):
        res = CAMEngine(cnn, fast_path=fast_path).explain(
            x, ['gradcam', 'eigencam'], topk=2
        )
        assert res.descriptors == {}
    assert calls == []
