"""Attention rollout, gradient-weighted attention and relevance propagation.

Checked against hand computations: literal numbers for rollout and
relevance on a 3-token example, and an independent numpy computation on a
2-block ViT whose attention and gradients come from a forward pass written
out in the test (not from the capture under test).
"""

import numpy as np
import pytest
import torch

from mmcam_ext.apis.cam_engine import CAMEngine
from mmcam_ext.methods import build_method
from mmcam_ext.methods.attention import (
    grad_attention_saliency,
    readout,
    relevance,
    rollout,
)
from mmcam_ext.methods.attention_capture import AttentionCapture
from tests.helpers.attention_models import (
    TIMM,
    TIMM_SIZE,
    WINDOWED,
    timm_classifier,
    tiny_classifier,
)

# One head, cls + 2 patches. The cls token attends half to itself, half to
# patch 1; patches attend to themselves.
A = torch.tensor([[[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]])


def test_rollout_literal_hand_computation():
    # (A + I) row-normalised = [[.75, .25, 0], [0, 1, 0], [0, 0, 1]];
    # squared: cls row = [.5625, .75*.25 + .25*1, 0] = [.5625, .4375, 0].
    joint = rollout([A, A])
    np.testing.assert_allclose(joint[0, 0].numpy(), [0.5625, 0.4375, 0.0])
    np.testing.assert_allclose(
        readout(joint, slice(0, 1), 1)[0].numpy(), [0.4375, 0.0]
    )


def test_relevance_literal_hand_computation():
    # Gradients of one: clamp(G * A) = A. R1 = I + A = [[1.5, .5, 0],
    # [0, 2, 0], [0, 0, 2]]; R2 = R1 + A @ R1, cls row = [1.5, .5, 0] +
    # [.75, .25 + 1, 0] = [2.25, 1.75, 0].
    ones = torch.ones_like(A)
    rel = relevance([A, A], [ones, ones])
    np.testing.assert_allclose(rel[0, 0].numpy(), [2.25, 1.75, 0.0])
    # Negative gradients are clamped away: relevance stays the identity.
    assert torch.equal(relevance([A, A], [-ones, -ones])[0], torch.eye(3))


# ----------------------------------------------------------------------
# Independent numpy versions of the three formulas (float64, loops).
def np_rollout(attns, fusion='mean', discard=0.0):
    joint = None
    for a in attns:
        fused = {'mean': a.mean(1), 'max': a.max(1), 'min': a.min(1)}[fusion]
        out = []
        for m in fused:
            m = m.copy()
            n_drop = int(m.size * discard)
            if n_drop:
                m.flat[np.argsort(m, axis=None, kind='stable')[:n_drop]] = 0
            m = m + np.eye(len(m))
            out.append(m / m.sum(1, keepdims=True))
        step = np.stack(out)
        joint = step if joint is None else step @ joint
    return joint


def np_relevance(attns, grads):
    rel = np.stack([np.eye(attns[0].shape[-1])] * attns[0].shape[0])
    for a, g in zip(attns, grads):
        rel = rel + np.maximum(a * g, 0).mean(1) @ rel
    return rel


def np_grad_attention(attns, grads, rows, extra, eps):
    sal = 1.0
    for a, g in zip(attns, grads):
        s = (a * g).mean(1)[:, rows, extra:].mean(1)
        low, high = s.min(1, keepdims=True), s.max(1, keepdims=True)
        sal = sal * (s - low + eps * (high - low))
    return sal / sal.max(1, keepdims=True)


@pytest.mark.parametrize('fusion', ['mean', 'max', 'min'])
@pytest.mark.parametrize('discard', [0.0, 0.3])
def test_rollout_matches_numpy(fusion, discard):
    attns = [torch.rand(2, 3, 6, 6).softmax(-1) for _ in range(3)]
    got = rollout(attns, fusion, discard).double().numpy()
    want = np_rollout([a.double().numpy() for a in attns], fusion, discard)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_grad_attention_matches_numpy():
    attns = [torch.rand(2, 3, 6, 6).softmax(-1) for _ in range(4)]
    grads = [torch.randn(2, 3, 6, 6) for _ in range(4)]
    got = grad_attention_saliency(attns, grads, slice(0, 1), 1, 1e-3)
    want = np_grad_attention(
        [a.numpy() for a in attns],
        [g.numpy() for g in grads],
        slice(0, 1),
        1,
        1e-3,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------
def manual_vit(model, x):
    """The tiny ViT's forward written out, attention made explicit here.

    Returns class scores and each block's attention ``(B, heads, N, N)``
    as tensors of this graph, so their gradients are independent of the
    capture under test.
    """
    bb = model.backbone
    tokens, _ = bb.patch_embed(x)
    tokens = torch.cat([bb.cls_token.expand(len(x), -1, -1), tokens], 1)
    tokens = tokens + bb.pos_embed  # 32 x 32 input: no resizing needed
    attns = []
    for layer in bb.layers:
        h = layer.ln1(tokens)
        bsz, n, c = h.shape
        heads = layer.attn.num_heads
        qkv = layer.attn.qkv(h).reshape(bsz, n, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) / (c // heads) ** 0.5).softmax(-1)
        attns.append(attn)
        mixed = (attn @ v).transpose(1, 2).reshape(bsz, n, c)
        tokens = tokens + layer.attn.proj(mixed)
        tokens = layer.ffn(layer.ln2(tokens), identity=tokens)
    cls = bb.ln1(tokens)[:, 0]
    return model.head.layers.head(cls), attns


def test_methods_on_tiny_vit_match_hand_computation():
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([0, 2])
    logits, attns = manual_vit(model, x)
    assert torch.allclose(logits, model(x, mode='tensor'), atol=1e-5)
    grads = torch.autograd.grad(
        logits.gather(1, targets[:, None]).sum(), attns
    )
    a = [t.detach().double().numpy() for t in attns]
    g = [t.double().numpy() for t in grads]
    want = {
        'attention_rollout': np_rollout(a)[:, 0, 1:],
        'attention_relevance': np_relevance(a, g)[:, 0, 1:],
        'grad_attention': np_grad_attention(a, g, slice(0, 1), 1, 1e-3),
    }
    for name, expected in want.items():
        sal, grid = build_method(name).patch_saliency(model, x, targets)
        assert grid == (4, 4)
        np.testing.assert_allclose(
            sal.double().numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=name
        )


def test_distilled_deit_reads_cls_and_dist_rows():
    model = tiny_classifier('deit_distilled')
    x = torch.randn(2, 3, 32, 32)
    sal, grid = build_method('attention_rollout').patch_saliency(
        model, x, None
    )
    with AttentionCapture(model) as cap, torch.no_grad():
        model(x, mode='tensor')
        blocks = cap.collected()
    joint = np_rollout([b.raw.double().numpy() for b in blocks])
    # Both extra tokens feed DeiT's head: average their rows; patches
    # start after the two extra tokens.
    want = joint[:, 0:2, 2:].mean(1)
    assert grid == (4, 4) and sal.shape == (2, 16)
    np.testing.assert_allclose(sal.double().numpy(), want, rtol=1e-5)


@pytest.mark.parametrize('name', ['grad_attention', 'attention_relevance'])
def test_class_specific_maps_differ_by_target(name):
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    method = build_method(name)
    sal0, _ = method.patch_saliency(model, x, torch.tensor([0, 0]))
    sal1, _ = method.patch_saliency(model, x, torch.tensor([1, 1]))
    assert (sal0 - sal1).abs().max() > 1e-3 * sal0.abs().max()


def test_rollout_is_class_agnostic():
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    method = build_method('rollout')
    sal0, _ = method.patch_saliency(model, x, torch.tensor([0, 0]))
    sal1, _ = method.patch_saliency(model, x, torch.tensor([1, 2]))
    assert torch.equal(sal0, sal1)


@pytest.mark.parametrize('name', ['grad_attention', 'attention_relevance'])
@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_batch_gives_each_sample_its_own_target(name, kind):
    model = tiny_classifier(kind)
    x = torch.randn(2, 3, 32, 32)
    method = build_method(name)
    batch, _ = method.patch_saliency(model, x, torch.tensor([0, 2]))
    for i, t in enumerate([0, 2]):
        single, _ = method.patch_saliency(
            model, x[i : i + 1], torch.tensor([t])
        )
        assert torch.allclose(batch[i], single[0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    'kind', ['vit', 'deit_distilled', 'eva02', 't2t', *WINDOWED]
)
def test_non_square_input_uses_real_grid(kind):
    model = tiny_classifier(kind)
    x = torch.randn(2, 3, 32, 48)
    sal, grid = build_method('attention_relevance').patch_saliency(
        model, x, torch.tensor([0, 1])
    )
    assert grid[1] > grid[0] and sal.shape == (2, grid[0] * grid[1])
    assert grid[1] / grid[0] == 1.5  # the input's aspect
    result = CAMEngine(model).explain(x, methods=['attention_relevance'])
    maps = result.maps['AttentionRelevance']
    assert maps.shape == (2, 1, 32, 48)


@pytest.mark.parametrize(
    'kind',
    [
        'vit',
        'deit_distilled',
        'deit3',
        'beit',
        'eva02',
        't2t',
        'revvit',
        *WINDOWED,
        *TIMM,
    ],
)
def test_engine_runs_attention_methods_next_to_gradcam(kind):
    model = timm_classifier(kind) if kind in TIMM else tiny_classifier(kind)
    flags = [p.requires_grad for p in model.parameters()]
    size = TIMM_SIZE.get(kind, (32, 32))
    x = torch.randn(2, 3, *size)
    result = CAMEngine(model).explain(
        x,
        methods=[
            'attention_rollout',
            'grad_attention',
            'attention_relevance',
            'gradcam',
        ],
    )
    assert set(result.maps) == {
        'AttentionRollout',
        'GradAttention',
        'AttentionRelevance',
        'GradCAM',
    }
    for name, maps in result.maps.items():
        assert maps.shape == (2, 1, *size), name
        assert np.isfinite(maps).all() and maps.min() >= 0
        assert maps.max() <= 1 + 1e-6, name
        # Each map spans [0, 1]: not blank.
        assert np.allclose(maps.reshape(2, -1).max(1), 1, atol=1e-4), name
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_timm_register_tokens_are_dropped_and_only_cls_is_read():
    """ViT with 4 register tokens: the head reads token 0 only."""
    model = timm_classifier('timm_vit_reg')
    x = torch.randn(2, 3, 32, 32)
    sal, grid = build_method('attention_rollout').patch_saliency(
        model, x, None
    )
    with AttentionCapture(model) as cap, torch.no_grad():
        model(x, mode='tensor')
        blocks = cap.collected()
    joint = np_rollout([b.raw.double().numpy() for b in blocks])
    assert grid == (4, 4) and sal.shape == (2, 16)
    np.testing.assert_allclose(
        sal.double().numpy(), joint[:, 0, 5:], rtol=1e-5
    )


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(head_fusion='median'), 'head_fusion'),
        (dict(discard_ratio=1.0), 'discard_ratio'),
    ],
)
def test_rollout_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_method('attention_rollout', **kwargs)


def test_tokens_to_maps_folds_row_major_and_per_sample():
    from mmcam_ext.methods.attention import tokens_to_maps

    sal = torch.zeros(2, 12)  # a 2 x 6 grid, 8 px patches on 16 x 48
    sal[0, 1 * 6 + 4] = 1.0  # row 1, column 4
    sal[1, 0], sal[1, 11] = 1e-3, 5e-4  # tiny scores, another sample
    maps = tokens_to_maps(sal, (2, 6), (16, 48))
    assert maps.shape == (2, 16, 48)
    row, col = divmod(int(maps[0].argmax()), 48)
    assert 8 <= row < 16 and 32 <= col < 40
    row, col = divmod(int(maps[1].argmax()), 48)
    assert row < 8 and col < 8
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match='num_extra_tokens'):
        tokens_to_maps(sal, (3, 6), (16, 48))
