"""The in-loop attention path against the general path.

A loop-style forward (``torch.no_grad()``, ``mode='tensor'``) runs with
the engine's capture started; the loop's scores must be bit-identical to
the same forward without it (the attention kernels are kept, fused ones
included), and the maps of rollout, grad-attention and relevance must
equal the general path's (``CAMEngine.explain`` on the same samples: its
own forward with explicit kernels) for every attention family.
"""

import numpy as np
import pytest
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.apis.loop_attention import LoopAttentionCapture
from tests.helpers.attention_models import (
    TIMM,
    TIMM_SIZE,
    TINY,
    timm_classifier,
    tiny_classifier,
)
from tests.helpers.models import build_classifier
from tests.helpers.zoo_cases import ZOO_CASES
from tests.test_methods.test_attention_zoo import ZOO_ATTENTION

METHODS = ['attention_rollout', 'grad_attention', 'attention_relevance']
# Fused kernel (loop) vs explicit softmax (general path): float32 rounding.
ATOL = 1e-4


def _model(kind):
    torch.manual_seed(0)
    return timm_classifier(kind) if kind in TIMM else tiny_classifier(kind)


def _loop(engine, model, x, methods):
    """The loop's forward with the engine's capture, and without it."""
    with torch.no_grad():
        plain = model(x, mode='tensor')
    engine.prepare_capture(x, methods)
    capture = engine.loop_capture_for(methods)
    assert isinstance(capture, LoopAttentionCapture)
    with torch.no_grad():
        looped = model(x, mode='tensor')
        assert not torch.is_grad_enabled()  # switched back at the scores
    return capture, plain, looped


def _same_as_general(model, x, methods, rows=(2, 0)):
    engine = CAMEngine(model)
    capture, plain, looped = _loop(engine, model, x, methods)
    assert torch.equal(plain, looped)  # the loop's outputs unchanged
    rows = list(rows)
    targets = plain.argmax(1)[rows][:, None].numpy()
    got = engine.explain_capture(
        capture, methods, targets, rows, inputs=lambda: x
    )
    assert engine.last_path == LoopAttentionCapture.path
    ref = engine.explain(x[rows], methods, targets=targets)
    assert set(got.maps) == set(ref.maps)
    for name in ref.maps:
        np.testing.assert_allclose(
            got.maps[name], ref.maps[name], atol=ATOL, err_msg=name
        )
        assert (np.ptp(got.maps[name].reshape(len(rows), -1), 1) > 0.5).all()
    np.testing.assert_array_equal(got.targets, ref.targets)
    return got


@pytest.mark.parametrize('rows', [(2, 0), (0, 1, 2)], ids=['some', 'all'])
@pytest.mark.parametrize('kind', [*TINY, *TIMM])
def test_in_loop_maps_equal_general_path(kind, rows):
    """A subset of the batch (dense copies) and the whole batch (the
    blocks as captured: probabilities and gradients formed when read, the
    cheaper products where the block allows them), every method in one
    call (in both orders: a method must not change what the next reads)."""
    model = _model(kind)
    x = torch.randn(3, 3, *TIMM_SIZE.get(kind, (32, 32)))
    methods = METHODS if len(rows) == 2 else METHODS[::-1]
    _same_as_general(model, x, methods, rows)


@pytest.mark.slow
@pytest.mark.parametrize('family', ZOO_ATTENTION)
def test_in_loop_maps_equal_general_path_zoo(family):
    torch.manual_seed(0)
    case = next(c for c in ZOO_CASES if c.family == family)
    model = build_classifier(case.model_config()).eval()
    x = torch.randn(3, case.in_channels, *case.size)
    _same_as_general(model, x, METHODS)


@pytest.mark.parametrize(
    'kind, class_rows',
    [
        ('vit', True),
        ('deit_distilled', True),
        ('timm_vit', True),
        ('timm_volo', False),  # pooled readout in its transformer blocks
    ],
)
def test_grad_attention_forms_no_gradient_matrix(
    kind, class_rows, monkeypatch
):
    """Whole batch, kept kernels: grad-attention never forms ``∂y/∂A``
    (N x N per head) of a global block; with a class-token readout not even
    ``A``, only the class token(s)' rows. Maps equal the general path's
    (which forms both)."""
    from mmcam_ext.methods.attention_capture import AttentionGrad
    from mmcam_ext.methods.attention_taps import Recorded

    model = _model(kind)
    x = torch.randn(3, 3, *TIMM_SIZE.get(kind, (32, 32)))
    engine = CAMEngine(model)
    capture, plain, looped = _loop(engine, model, x, ['grad_attention'])
    assert torch.equal(plain, looped)
    assert capture.complete
    cheap = [
        b
        for b in capture.blocks
        if b.kept is not None and b._kept_global(b.kept.graph)
    ]
    assert cheap  # global blocks with kept kernels: the cheap path is open
    dense, formed = [], []
    to_dense, to_attn = AttentionGrad.dense, Recorded.attn.fget

    def counted_dense(self):
        dense.append(self.block)
        return to_dense(self)

    def counted_attn(self):
        formed.append(self)
        return to_attn(self)

    monkeypatch.setattr(AttentionGrad, 'dense', counted_dense)
    monkeypatch.setattr(Recorded, 'attn', property(counted_attn))
    targets = plain.argmax(1)[:, None].numpy()
    got = engine.explain_capture(
        capture, ['grad_attention'], targets, [0, 1, 2], inputs=lambda: x
    )
    assert engine.last_path == LoopAttentionCapture.path
    assert not any(b in dense for b in cheap)
    if class_rows:  # A itself was never formed
        assert not any(b.kept in formed for b in cheap)
    monkeypatch.undo()
    ref = engine.explain(x, ['grad_attention'], targets=targets)
    (name,) = ref.maps
    np.testing.assert_allclose(got.maps[name], ref.maps[name], atol=ATOL)
    assert (np.ptp(got.maps[name].reshape(3, -1), 1) > 0.5).all()


@pytest.mark.parametrize('kind', ['vit', 'timm_swin'])
def test_several_methods_share_one_forward_and_backward(kind):
    """GradCAM + grad-attention + rollout: the loop's forward only, one
    backward per target column, maps equal to the general path's."""
    model = _model(kind)
    x = torch.randn(3, 3, 32, 32)
    methods = ['gradcam', 'grad_attention', 'attention_rollout']
    engine = CAMEngine(model)
    capture, plain, looped = _loop(engine, model, x, methods)
    assert torch.equal(plain, looped)
    calls = []
    grad = torch.autograd.grad

    def counted(*args, **kwargs):
        calls.append(1)
        return grad(*args, **kwargs)

    forwards = []
    handle = model.register_forward_pre_hook(lambda *a: forwards.append(1))
    targets = plain.argmax(1)[:, None].numpy()
    try:
        torch.autograd.grad = counted
        got = engine.explain_capture(
            capture, methods, targets, [0, 1, 2], inputs=lambda: x
        )
    finally:
        torch.autograd.grad = grad
        handle.remove()
    assert engine.last_path == LoopAttentionCapture.path
    assert forwards == [] and len(calls) == 1
    ref = engine.explain(x, methods, targets=targets)
    for name in ref.maps:
        np.testing.assert_allclose(
            got.maps[name], ref.maps[name], atol=ATOL, err_msg=name
        )


def test_rollout_builds_no_graph():
    model = _model('vit')
    x = torch.randn(2, 3, 32, 32)
    engine = CAMEngine(model)
    capture, plain, looped = _loop(engine, model, x, ['attention_rollout'])
    assert torch.equal(plain, looped)
    assert capture.complete and not capture.logits.requires_grad
    assert all(not b.graph.requires_grad for b in capture.blocks)
    engine.explain_capture(
        capture, ['attention_rollout'], [[0], [1]], [0, 1], lambda: x
    )
    assert engine.last_path == LoopAttentionCapture.path


def test_two_targets_per_sample_and_model_left_as_it_was():
    model = _model('timm_vit')
    flags = [p.requires_grad for p in model.parameters()]
    fused = [m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')]
    x = torch.randn(2, 3, 32, 32)
    engine = CAMEngine(model)
    capture, plain, looped = _loop(engine, model, x, METHODS)
    assert torch.equal(plain, looped)
    targets = np.array([[0, 1], [2, 0]])
    got = engine.explain_capture(capture, METHODS, targets, [0, 1], lambda: x)
    ref = engine.explain(x, METHODS, targets=targets)
    for name in ref.maps:
        assert got.maps[name].shape == (2, 2, 32, 32)
        np.testing.assert_allclose(got.maps[name], ref.maps[name], atol=ATOL)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert fused == [
        m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')
    ]
    assert all('forward' not in m.__dict__ for m in model.modules())


def test_capture_for_other_methods_is_refused():
    model = _model('vit')
    x = torch.randn(1, 3, 32, 32)
    engine = CAMEngine(model)
    engine.prepare_capture(x, METHODS)
    assert engine.loop_capture_for(['attention_rollout']) is None
    assert engine.loop_capture_for(['gradcam']) is None
