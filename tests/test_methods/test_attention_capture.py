"""Attention capture: same outputs, recorded probabilities, clean restore."""

import functools

import numpy as np
import pytest
import torch

from mmcam_ext.methods.attention_capture import (
    ATTENTION_FACTS,
    AttentionCapture,
)
from tests.helpers.attention_models import NON_SQUARE_OK, TINY, tiny_classifier


def _logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('kind', [k for k in TINY if k != 'swin'])
@pytest.mark.parametrize('size', [(32, 32), (32, 48)])
def test_capture_keeps_outputs(kind, size):
    if size != (32, 32) and kind not in NON_SQUARE_OK:
        pytest.skip(f'{kind} runs only at its training size')
    model = tiny_classifier(kind)
    x = torch.randn(2, 3, *size)
    before = _logits(model, x)
    with AttentionCapture(model) as cap:
        during = _logits(model, x)
        attns = cap.collected()
    assert torch.allclose(before, during, atol=1e-5), kind
    grid = cap.grid
    tokens = grid[0] * grid[1] + cap.num_extra_tokens
    assert len(attns) == 2
    for attn in attns:
        assert attn.shape == (2, 2, tokens, tokens)
        # Probabilities: non-negative rows that sum to one.
        assert bool((attn >= 0).all())
        assert torch.allclose(attn.sum(-1), torch.ones(()), atol=1e-5)


def test_grid_and_extra_tokens_follow_the_input():
    model = tiny_classifier('deit_distilled')
    with AttentionCapture(model) as cap:
        _logits(model, torch.randn(2, 3, 32, 48))
    assert cap.grid == (4, 6)
    assert cap.num_extra_tokens == 2
    assert cap.collected()[0].shape[-1] == 4 * 6 + 2


def _hand_attention(model, x):
    """softmax(Q Kᵀ / √d) per block from ln1 outputs and qkv weights, numpy."""
    inputs = []
    handles = [
        layer.ln1.register_forward_hook(
            lambda m, a, out: inputs.append(out.detach().double().numpy())
        )
        for layer in model.backbone.layers
    ]
    _logits(model, x)
    for h in handles:
        h.remove()
    result = []
    for layer, h in zip(model.backbone.layers, inputs):
        w = layer.attn.qkv.weight.detach().double().numpy()
        b = layer.attn.qkv.bias.detach().double().numpy()
        qkv = h @ w.T + b  # (B, N, 3C)
        bsz, n, _ = qkv.shape
        heads, d = layer.attn.num_heads, layer.attn.head_dims
        qkv = qkv.reshape(bsz, n, 3, heads, d).transpose(2, 0, 3, 1, 4)
        logits = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) / np.sqrt(d)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        result.append(e / e.sum(-1, keepdims=True))
    return result


def test_recorded_attention_matches_hand_computation():
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    expected = _hand_attention(model, x)
    with AttentionCapture(model) as cap:
        _logits(model, x)
    for got, want in zip(cap.collected(), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_qk_scale_attention_function_is_reproduced():
    """``qk_scale`` makes MMPretrain call its python implementation."""
    from mmpretrain.models.utils.attention import (
        scaled_dot_product_attention_pyimpl as pyimpl,
    )

    model = tiny_classifier('vit')
    attn = model.backbone.layers[0].attn
    # What MultiheadAttention.__init__ does when qk_scale is set.
    attn.scaled_dot_product_attention = functools.partial(
        pyimpl, scale=attn.head_dims**-0.5
    )
    x = torch.randn(2, 3, 32, 32)
    before = _logits(model, x)
    with AttentionCapture(model):
        during = _logits(model, x)
    assert torch.allclose(before, during, atol=1e-5)


def _model_state(model):
    """Per module: instance attributes (identity) and hook counts."""
    state = {}
    for name, module in model.named_modules():
        attrs = {
            k: id(v) for k, v in vars(module).items() if not k.startswith('_')
        }
        hooks = (
            len(module._forward_hooks),
            len(module._forward_pre_hooks),
            len(module._backward_hooks),
        )
        state[name] = (attrs, hooks)
    return state


@pytest.mark.parametrize('kind', ['vit', 'beit', 'eva02', 't2t'])
def test_capture_restores_modules(kind):
    model = tiny_classifier(kind)
    before = _model_state(model)
    with AttentionCapture(model):
        assert _model_state(model) != before  # something was swapped/tapped
        _logits(model, torch.randn(1, 3, 32, 32))
    assert _model_state(model) == before


def test_capture_restores_modules_on_error():
    model = tiny_classifier('vit')
    before = _model_state(model)
    with pytest.raises(RuntimeError, match='boom'):
        with AttentionCapture(model):
            raise RuntimeError('boom')
    assert _model_state(model) == before


def test_collected_refuses_missing_forward():
    model = tiny_classifier('vit')
    with (
        AttentionCapture(model) as cap,
        pytest.raises(RuntimeError, match='did not run'),
    ):
        cap.collected()


def test_windowed_attention_points_to_gradient_methods():
    model = tiny_classifier('swin')
    with pytest.raises(ValueError, match='SwinTransformer.*windows.*gradcam'):
        AttentionCapture(model)


def test_unknown_backbone_lists_supported_families():
    from mmpretrain.models import ImageClassifier

    model = ImageClassifier(
        backbone=dict(type='ResNet', depth=18),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=512),
    )
    with pytest.raises(ValueError) as err:
        AttentionCapture(model)
    message = str(err.value)
    assert 'ResNet' in message and 'gradcam' in message
    assert all(name in message for name in ATTENTION_FACTS)
