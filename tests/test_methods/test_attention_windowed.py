"""Windowed and hierarchical attention, checked against global computations.

* The scatter is right: the dense global matrix our geometry builds from
  the recorded windows, applied to the block's values, reproduces the
  attention module's own output (MMPretrain Swin with shift and padding,
  timm Swin, Twins' locally-grouped attention with padding, VOLO's
  overlapping outlook windows).
* A Swin whose one window covers the whole grid gives the same three maps as
  plain global attention on the same weights, computed by a forward pass
  written out in the test.
* The block-wise (vector) methods equal dense-matrix computations of the
  same definitions, including patch merging and sub-sampled keys.
"""

import numpy as np
import pytest
import torch

from mmcam_ext.methods import build_method
from mmcam_ext.methods.attention import (
    grad_attention_saliency,
    readout,
    relevance,
    rollout,
)
from mmcam_ext.methods.attention_capture import AttentionCapture
from mmcam_ext.methods.attention_geometry import grid_parents
from tests.helpers.attention_models import (
    WINDOWED,
    timm_classifier,
    tiny_classifier,
)

TARGETS = torch.tensor([0, 2])


def dense(block, local=None):
    """``(B, heads, S, Sk)`` global matrix of a block's windows (loops)."""
    geom = block.geometry
    local = (block.attn if local is None else local).detach().double()
    bsz, _, heads = local.shape[:3]
    out = torch.zeros(bsz, heads, geom.space.size, geom.key_space.size)
    out = out.double()
    for w in range(geom.query_index.shape[0]):
        for a, q in enumerate(geom.query_index[w].tolist()):
            for c, k in enumerate(geom.key_index[w].tolist()):
                if q >= 0 and k >= 0:
                    out[:, :, q, k] += local[:, w, :, a, c]
    return out


def _record(model, x, module_types):
    """Capture blocks, plus each matching module's input and output."""
    seen = []
    hooks = [
        m.register_forward_hook(
            lambda mod, args, out: seen.append((args, out)), with_kwargs=False
        )
        for m in model.modules()
        if type(m).__name__ in module_types
    ]
    try:
        with AttentionCapture(model) as cap, torch.no_grad():
            model(x, mode='tensor')
            blocks = cap.collected()
    finally:
        for h in hooks:
            h.remove()
    return blocks, seen


def _of_type(root, blocks, name):
    return [
        b for b in blocks if type(root.get_submodule(b.name)).__name__ == name
    ]


def _heads(t, heads):
    """``(B, L, C)`` -> ``(B, heads, L, C / heads)``, float64."""
    bsz, length, chans = t.shape
    return t.double().view(bsz, length, heads, chans // heads).transpose(1, 2)


def _merge(t):
    bsz, heads, length, dims = t.shape
    return t.transpose(1, 2).reshape(bsz, length, heads * dims)


def _attend(mat, values, pad_value):
    """``M @ V`` plus the attention mass on padded tokens times their value
    (padding is zeros before the projection, so its value is the bias)."""
    out = mat @ values
    if pad_value is not None:
        mass = 1 - mat.sum(-1, keepdim=True)
        out = out + mass * pad_value.view(1, mat.shape[1], 1, -1)
    return out


def _value_proj(qkv, x, heads):
    chans = x.shape[-1]
    weight = qkv.weight[2 * chans : 3 * chans].double()
    assert qkv.bias is not None  # a bias: padded tokens have a value
    bias = qkv.bias[2 * chans : 3 * chans].double()
    values = _heads(x.double() @ weight.T + bias, heads)
    return values, bias.view(heads, -1)


def test_swin_windows_reproduce_the_module_output():
    model = tiny_classifier('swin')
    x = torch.randn(2, 3, 40, 24)  # 10x6 then 5x3 grids: padded windows
    blocks, seen = _record(model, x, {'ShiftWindowMSA'})
    assert any((b.geometry.query_index < 0).any() for b in blocks), (
        'no padded window in this test'
    )
    for block, ((query, _hw), out) in zip(blocks, seen):
        msa = model.backbone.get_submodule(block.name)
        heads = msa.w_msa.num_heads
        values, pad = _value_proj(msa.w_msa.qkv, query, heads)
        mixed = _attend(dense(block), values, pad)
        want = msa.w_msa.proj(_merge(mixed).float())
        torch.testing.assert_close(want, out, atol=2e-5, rtol=1e-4)


def test_timm_swin_windows_reproduce_the_block():
    model = timm_classifier('timm_swin')
    x = torch.randn(2, 3, 32, 32)
    inputs = []
    hooks = [
        blk.norm1.register_forward_hook(lambda m, a, o: inputs.append(o))
        for stage in model.model.layers
        for blk in stage.blocks
    ]
    with AttentionCapture(model) as cap, torch.no_grad():
        model(x, mode='tensor')
        blocks = cap.collected()
    for h in hooks:
        h.remove()
    assert any(any(b.shift_size) for s in model.model.layers for b in s.blocks)
    for block, normed in zip(blocks, inputs):
        swin_block = model.model.get_submodule(block.name)
        attn = swin_block.attn
        flat = normed.reshape(normed.shape[0], -1, normed.shape[-1])
        values, pad = _value_proj(attn.qkv, flat, attn.num_heads)
        mixed = _attend(dense(block), values, pad)
        want = attn.proj(_merge(mixed).float()).view_as(normed)
        with torch.no_grad():
            got = swin_block._attn(normed)  # timm's own (fused) path
        torch.testing.assert_close(want, got, atol=2e-5, rtol=1e-4)


def test_twins_local_windows_reproduce_the_module_output():
    model = tiny_classifier('twins_svt')
    x = torch.randn(2, 3, 40, 24)  # 10x6 grid, windows of 4: padded
    blocks, seen = _record(model, x, {'LocallyGroupedSelfAttention'})
    local = _of_type(model.backbone, blocks, 'LocallyGroupedSelfAttention')
    assert local and len(local) == len(seen)
    for block, ((tokens, _hw), out) in zip(local, seen):
        lsa = model.backbone.get_submodule(block.name)
        values, pad = _value_proj(lsa.qkv, tokens, lsa.num_heads)
        mixed = _attend(dense(block), values, pad)
        want = lsa.proj(_merge(mixed).float())
        torch.testing.assert_close(want, out, atol=2e-5, rtol=1e-4)


def test_volo_outlook_windows_reproduce_the_module_output():
    model = timm_classifier('timm_volo')
    x = torch.randn(2, 3, 64, 64)
    blocks, seen = _record(model, x, {'OutlookAttention'})
    outlook = _of_type(model.model, blocks, 'OutlookAttention')
    assert outlook and len(outlook) == len(seen)
    for block, ((grid,), out) in zip(outlook, seen):
        attn = model.model.get_submodule(block.name)
        flat = grid.reshape(grid.shape[0], -1, grid.shape[-1])
        values = _heads(attn.v(flat), attn.num_heads)  # unfold pads zeros
        mixed = _attend(dense(block), values, None)
        want = attn.proj(_merge(mixed).float()).view_as(out)
        torch.testing.assert_close(want, out, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------
def manual_swin(model, x):
    """The one-window tiny Swin written out with *global* attention.

    Returns class scores and each block's attention ``(B, heads, N, N)``
    computed here (``softmax(q kᵀ · scale + relative bias)`` over all
    tokens), so gradients come from this graph, not from the capture.
    """
    bb = model.backbone
    tokens, hw = bb.patch_embed(x)
    attns = []
    for block in bb.stages[0].blocks:
        msa = block.attn.w_msa
        h = block.norm1(tokens)
        bsz, n, c = h.shape
        qkv = msa.qkv(h).reshape(bsz, n, 3, msa.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        bias = msa.relative_position_bias_table[
            msa.relative_position_index.view(-1)
        ].view(n, n, -1)
        logits = (q * msa.scale) @ k.transpose(-2, -1)
        attn = (logits + bias.permute(2, 0, 1)[None]).softmax(-1)
        attns.append(attn)
        mixed = (attn @ v).transpose(1, 2).reshape(bsz, n, c)
        tokens = tokens + msa.proj(mixed)
        tokens = block.ffn(block.norm2(tokens), identity=tokens)
    feat = bb.norm0(tokens).view(bsz, *hw, -1).permute(0, 3, 1, 2)
    return model.head.fc(model.neck((feat,))[0]), attns


def test_one_window_swin_equals_plain_global_attention():
    model = tiny_classifier('swin_one_window')
    x = torch.randn(2, 3, 32, 32)
    logits, attns = manual_swin(model, x)
    torch.testing.assert_close(logits, model(x, mode='tensor'))
    grads = torch.autograd.grad(
        logits.gather(1, TARGETS[:, None]).sum(), attns
    )
    attns = [a.detach() for a in attns]
    patches = slice(0, None)  # no class token: the mean of all rows
    want = {
        'attention_rollout': readout(rollout(attns), patches, 0),
        'attention_relevance': readout(relevance(attns, grads), patches, 0),
        'grad_attention': grad_attention_saliency(
            attns, grads, patches, 0, 1e-3
        ),
    }
    for name, expected in want.items():
        sal, grid = build_method(name).patch_saliency(model, x, TARGETS)
        assert grid == (8, 8)
        torch.testing.assert_close(sal.float(), expected, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------
def _capture_with_grads(model, x):
    with AttentionCapture(model) as cap:
        inputs = x.clone().requires_grad_(True)
        logits = model(inputs, mode='tensor')
        blocks = cap.collected()
        grads = torch.autograd.grad(
            logits.gather(1, TARGETS[:, None]).sum(), [b.raw for b in blocks]
        )
    return blocks, [b.local(g) for b, g in zip(blocks, grads)]


def _spread(fine, coarse, stride, score):
    """``(Lc, Lf)`` dense lifting: uniform children (flow) or 0/1 (score)."""
    parents = grid_parents(fine, coarse, stride)
    lift = torch.zeros(coarse[0] * coarse[1], fine[0] * fine[1]).double()
    for child, parent in enumerate(parents.tolist()):
        if parent >= 0:
            lift[parent, child] = 1.0
    if not score:
        lift = lift / lift.sum(1, keepdim=True).clamp(min=1)
    return lift


def _dense_step(block, local, score=False):
    """``(B, S, S)``: head-fused block matrix with keys lifted to ``S``."""
    mat = dense(block, local)  # (B, heads, S, Sk)
    geom = block.geometry
    if geom.key_space != geom.space:
        mat = mat @ _spread(
            geom.space.grid, geom.key_space.grid, geom.key_stride, score
        )
    return mat


def _dense_walk(blocks, step):
    """Readout (mean patch row) propagated with dense matrices, merging
    between stages as uniform children."""
    space = blocks[-1].space
    v = torch.full((1, space.size), 1.0 / space.size).double()
    for i in range(len(blocks) - 1, -1, -1):
        if blocks[i].space != space:
            v = v @ _spread(blocks[i].space.grid, space.grid, None, False)
            space = blocks[i].space
        v = step(i, v)
    return v


@pytest.mark.parametrize('kind', WINDOWED)
def test_block_methods_equal_dense_computations(kind):
    model = tiny_classifier(kind)
    x = torch.randn(2, 3, 40, 24)
    blocks, grads = _capture_with_grads(model, x)
    assert len({b.space.grid for b in blocks}) == 2  # two stages
    for sample in range(2):

        def rollout_step(i, v, s=sample):
            mat = _dense_step(blocks[i], blocks[i].attn)[s].mean(0)
            step = mat + torch.eye(mat.shape[0]).double()
            return v @ (step / step.sum(-1, keepdim=True))

        def relevance_step(i, v, s=sample):
            cam = (grads[i] * blocks[i].attn).clamp(min=0)
            return v + v @ _dense_step(blocks[i], cam)[s].mean(0)

        want_roll = _dense_walk(blocks, rollout_step)
        want_rel = _dense_walk(blocks, relevance_step)
        fine = blocks[0].space
        log_sal = 0
        for block, grad in zip(blocks, grads):
            mat = _dense_step(block, grad * block.attn, score=True)[sample]
            score = mat.mean(0).mean(0, keepdim=True)  # mean query row
            score = score @ _spread(fine.grid, block.space.grid, None, True)
            low, span = score.min(), score.max() - score.min()
            log_sal = log_sal + torch.log(score - low + 1e-3 * span)
        want_ga = torch.exp(log_sal - log_sal.max())
        for name, want in [
            ('attention_rollout', want_roll),
            ('attention_relevance', want_rel),
            ('grad_attention', want_ga),
        ]:
            sal, grid = build_method(name).patch_saliency(model, x, TARGETS)
            assert grid == fine.grid, name
            np.testing.assert_allclose(
                sal[sample].double().numpy(),
                want[0].numpy(),
                rtol=1e-4,
                atol=1e-7,
                err_msg=f'{kind} {name}',
            )


@pytest.mark.parametrize('kind', WINDOWED)
@pytest.mark.parametrize('name', ['grad_attention', 'attention_relevance'])
def test_windowed_maps_depend_on_the_target(kind, name):
    model = tiny_classifier(kind)
    x = torch.randn(2, 3, 32, 32)
    method = build_method(name)
    sal0, _ = method.patch_saliency(model, x, torch.tensor([0, 0]))
    sal1, _ = method.patch_saliency(model, x, torch.tensor([1, 1]))
    assert (sal0 - sal1).abs().max() > 1e-3 * sal0.abs().max()


def test_blocks_without_residual_hand_their_keys_to_the_earlier_block():
    """LeViT-style: a global 4x4 block, then 2x2 queries over its tokens
    with no residual path; rollout equals the dense product."""
    from mmcam_ext.methods.attention import block_rollout
    from mmcam_ext.methods.attention_capture import BlockAttention
    from mmcam_ext.methods.attention_geometry import (
        TokenSpace,
        global_geometry,
        query_subsampled_geometry,
    )

    a1 = torch.rand(1, 1, 2, 16, 16).softmax(-1)
    a2 = torch.rand(1, 1, 2, 4, 16).softmax(-1)
    blocks = [
        BlockAttention(
            'b1', a1, a1, global_geometry(TokenSpace((4, 4))), None
        ),
        BlockAttention(
            'b2', a2, a2, query_subsampled_geometry((4, 4), (2, 2)), None
        ),
    ]
    sal, grid = block_rollout(blocks, head_tokens=0)
    step1 = a1[0, 0].mean(0).double() + torch.eye(16).double()
    step1 = step1 / step1.sum(-1, keepdim=True)
    step2 = a2[0, 0].mean(0).double()  # rows already sum to one
    want = torch.full((1, 4), 0.25).double() @ step2 @ step1
    assert grid == (4, 4)
    torch.testing.assert_close(sal, want)
