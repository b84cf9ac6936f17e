"""Attention capture: same outputs, recorded probabilities, clean restore,
and a clear error for every family the methods cannot follow."""

import functools

import numpy as np
import pytest
import torch

from mmcam_ext.errors import ModelError
from mmcam_ext.methods.attention_capture import AttentionCapture
from mmcam_ext.utils.backbone_facts import FAMILY_FACTS
from tests.helpers.attention_models import (
    NON_SQUARE_OK,
    TIMM,
    TIMM_SIZE,
    TINY,
    timm_classifier,
    tiny_classifier,
)
from tests.helpers.models import build_classifier
from tests.helpers.zoo_cases import ZOO_CASES


def _logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


def _build(kind):
    return tiny_classifier(kind) if kind in TINY else timm_classifier(kind)


@pytest.mark.parametrize('kind', [*TINY, *TIMM])
@pytest.mark.parametrize('size', [(32, 32), (40, 24)])
def test_capture_keeps_outputs_and_records_probabilities(kind, size):
    if size != (32, 32) and kind not in NON_SQUARE_OK:
        pytest.skip(f'{kind} runs only at its training size')
    size = TIMM_SIZE.get(kind, size)
    model = _build(kind)
    x = torch.randn(2, 3, *size)
    before = _logits(model, x)
    with AttentionCapture(model) as cap:
        during = _logits(model, x)
        blocks = cap.collected()
    torch.testing.assert_close(before, during, atol=1e-5, rtol=1e-5)
    assert blocks
    for block in blocks:
        attn, geom = block.attn, block.geometry
        assert attn.shape[0] == 2 and attn.shape[1] == len(geom.query_index)
        assert attn.shape[-2:] == (
            geom.query_index.shape[1],
            geom.key_index.shape[1],
        )
        # Probabilities: non-negative rows that sum to one.
        assert bool((attn >= 0).all())
        torch.testing.assert_close(
            attn.sum(-1), torch.ones_like(attn[..., 0]), atol=1e-5, rtol=0
        )
        # Every token is a key somewhere; padding maps to no token.
        keys = geom.key_index[geom.key_index >= 0].unique()
        assert keys.tolist() == list(range(geom.key_space.size))


def test_grid_and_extra_tokens_follow_the_input():
    model = tiny_classifier('deit_distilled')
    with AttentionCapture(model) as cap:
        _logits(model, torch.randn(2, 3, 32, 48))
    space = cap.collected()[0].space
    assert space.grid == (4, 6) and space.extra == 2
    assert cap.head_tokens == 2  # DeiT's head averages cls and dist tokens
    assert cap.collected()[0].attn.shape[-1] == 4 * 6 + 2


@pytest.mark.parametrize(
    'kind,extra,head',
    [
        ('timm_vit', 1, 1),
        ('timm_vit_reg', 5, 1),
        ('timm_deit_distilled', 2, 2),
    ],
)
def test_timm_prefix_tokens_and_what_the_head_reads(kind, extra, head):
    model = timm_classifier(kind)
    with AttentionCapture(model) as cap:
        _logits(model, torch.randn(1, 3, 32, 32))
    assert {b.space for b in cap.collected()} == {cap.collected()[0].space}
    assert cap.collected()[0].space.extra == extra
    assert cap.head_tokens == head  # register tokens are not read


def test_volo_stages_are_recorded_in_forward_order():
    model = timm_classifier('timm_volo')
    with AttentionCapture(model) as cap:
        _logits(model, torch.randn(1, 3, 64, 64))
    kinds = [
        type(model.model.get_submodule(b.name)).__name__
        for b in cap.collected()
    ]
    first_class = kinds.index('ClassAttention')
    assert kinds[0] == 'OutlookAttention' and kinds[-1] == 'ClassAttention'
    assert set(kinds[first_class:]) == {'ClassAttention'}
    spaces = [b.space for b in cap.collected()]
    assert spaces[0].grid == (8, 8) and spaces[-1].grid == (4, 4)
    assert spaces[-1].extra == 1 and cap.head_tokens == 1


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
        np.testing.assert_allclose(got.raw.numpy(), want, atol=1e-5)


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


@pytest.mark.parametrize(
    'kind', ['vit', 'beit', 'eva02', 't2t', 'swin', 'twins_svt', *TIMM]
)
def test_capture_restores_modules(kind):
    model = _build(kind)
    before = _model_state(model)
    with AttentionCapture(model):
        assert _model_state(model) != before  # something was swapped/tapped
        _logits(model, torch.randn(1, 3, *TIMM_SIZE.get(kind, (32, 32))))
    assert _model_state(model) == before


def _fused_flags(model):
    return {
        name: m.__dict__.get('fused_attn', 'unset')
        for name, m in model.named_modules()
        if hasattr(m, 'fused_attn')
    }


@pytest.mark.parametrize('fused', [True, False])
def test_timm_fused_attention_is_switched_off_and_restored(fused):
    model = timm_classifier('timm_vit')
    for m in model.modules():
        if hasattr(m, 'fused_attn'):
            m.fused_attn = fused
    before = _fused_flags(model)
    x = torch.randn(2, 3, 32, 32)
    plain = _logits(model, x)
    with AttentionCapture(model):
        assert set(_fused_flags(model).values()) == {False}
        during = _logits(model, x)
    assert _fused_flags(model) == before
    torch.testing.assert_close(plain, during, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(plain, _logits(model, x), atol=0, rtol=0)


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


UNSUPPORTED = {
    'MViT': 'pooled by learned',
    'TNT': 'nested pixel',
    'Conformer': 'CNN branch',
    'EdgeNeXt': 'over channels',
    'MobileViT': 'convolutional',
    'ResNet': 'no token-to-token attention',
}


@pytest.mark.parametrize('family', sorted(UNSUPPORTED))
def test_unsupported_families_say_which_and_why(family):
    case = next(c for c in ZOO_CASES if c.family == family)
    model = build_classifier(case.model_config())
    with pytest.raises(ModelError) as err:
        AttentionCapture(model)
    message = str(err.value)
    name = type(model.backbone).__name__
    assert f'cannot follow {name}' in message
    assert UNSUPPORTED[family] in message and 'gradcam' in message


def test_every_family_row_states_its_attention():
    """Each row either records attention or says why it cannot."""
    for name, facts in FAMILY_FACTS.items():
        attention = facts.attention
        assert attention.modules or attention.unsupported, name
        assert not (attention.modules and attention.unsupported), name


def test_unknown_backbone_lists_supported_families():
    from mmpretrain.models import ImageClassifier
    from torch import nn

    class Custom(nn.Module):
        def forward(self, x):
            return (x.mean((2, 3), keepdim=True),)

    model = ImageClassifier(
        backbone=dict(type='ResNet', depth=18),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=3),
    )
    model.backbone = Custom()
    with pytest.raises(ModelError) as err:
        AttentionCapture(model)
    message = str(err.value)
    assert 'Custom' in message and 'gradcam' in message
    assert 'SwinTransformer' in message and 'PCPVT' in message
