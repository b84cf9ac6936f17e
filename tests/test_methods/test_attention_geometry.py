"""Window index maps against the models' own partition code; token flows.

The index maps are checked by pushing a grid of token *positions* through
the same padding, cyclic shift and window partition the models use
(MMPretrain's and timm's own functions, ``nn.Unfold`` for VOLO): each
window must then hold exactly the positions our geometry says.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.utils.attention import ShiftWindowMSA
from timm.models.swin_transformer import window_partition as timm_partition

from mmcam_ext.methods.attention_geometry import (
    SCORE,
    TokenSpace,
    apply_attention,
    grid_parents,
    outlook_geometry,
    regrid,
    subsampled_geometry,
    window_geometry,
)


def _positions(h, w):
    """``(1, h, w, 1)`` map of ``position + 1`` (0 is left for padding)."""
    return (torch.arange(h * w) + 1).view(1, h, w, 1).float()


@pytest.mark.parametrize('hw', [(8, 8), (7, 5), (5, 9)])
@pytest.mark.parametrize('shift', [0, 1, 2])
def test_mmpretrain_windows_follow_its_pad_roll_partition(hw, shift):
    window = 4
    x = _positions(*hw)
    pad_b, pad_r = (-hw[0]) % window, (-hw[1]) % window
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # as ShiftWindowMSA.forward
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    wins = ShiftWindowMSA.window_partition(x, window).reshape(-1, window**2)
    geom = window_geometry(hw, (window, window), (shift, shift), True)
    assert torch.equal(geom.query_index, wins.long() - 1)


@pytest.mark.parametrize('hw', [(8, 8), (7, 5)])
@pytest.mark.parametrize('shift', [0, 2])
def test_timm_windows_follow_its_roll_pad_partition(hw, shift):
    window = 4
    x = _positions(*hw)
    if shift:  # timm rolls the real grid, then pads
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    x = F.pad(x, (0, 0, 0, (-hw[1]) % window, 0, (-hw[0]) % window))
    wins = timm_partition(x, (window, window)).reshape(-1, window**2)
    geom = window_geometry(hw, (window, window), (shift, shift), False)
    assert torch.equal(geom.query_index, wins.long() - 1)


@pytest.mark.parametrize(
    'hw,kernel,pad,stride', [((8, 8), 3, 1, 2), ((6, 5), 3, 1, 1)]
)
def test_outlook_windows_follow_unfold(hw, kernel, pad, stride):
    x = _positions(*hw).permute(0, 3, 1, 2)
    unfold = torch.nn.Unfold(kernel, padding=pad, stride=stride)
    wins = unfold(x)[0].T  # (windows, k*k)
    geom = outlook_geometry(hw, kernel, pad, stride)
    assert torch.equal(geom.query_index, wins.long() - 1)


def _dense(geom, mat):
    """The global matrix a geometry's local matrices stand for (loops)."""
    bsz = mat.shape[0]
    out = np.zeros((bsz, geom.space.size, geom.key_space.size))
    qi, ki, m = geom.query_index.numpy(), geom.key_index.numpy(), mat.numpy()
    for w in range(qi.shape[0]):
        for a, q in enumerate(qi[w]):
            for c, k in enumerate(ki[w]):
                if q >= 0 and k >= 0:
                    out[:, q, k] += m[:, w, a, c]
    return out


@pytest.mark.parametrize(
    'geom',
    [
        window_geometry((7, 5), (4, 4), (2, 2), True),
        outlook_geometry((6, 6), 3, 1, 2),
        subsampled_geometry((6, 4), (3, 2), (2, 2)),
    ],
    ids=['shifted padded windows', 'outlook', 'sub-sampled keys'],
)
def test_apply_attention_is_a_product_with_the_dense_matrix(geom):
    nq, nk = geom.query_index.shape[1], geom.key_index.shape[1]
    mat = torch.rand(2, geom.query_index.shape[0], nq, nk)
    v = torch.rand(2, geom.space.size)
    want = np.einsum('bq,bqk->bk', v.numpy(), _dense(geom, mat))
    got = apply_attention(geom, v, mat).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_grid_parents_literal():
    # 4x4 -> 2x2 merging: each coarse token covers a 2x2 block.
    assert grid_parents((4, 4), (2, 2)).view(4, 4).tolist() == [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 3, 3],
        [2, 2, 3, 3],
    ]
    # 5 -> 3 rows with corner padding (ceil): the last row merges alone.
    assert grid_parents((5, 1), (3, 1)).tolist() == [0, 0, 1, 1, 2]
    # Keys pooled by a stride-2 kernel without padding: 5 -> 2 rows, the
    # last row is in no kernel.
    assert grid_parents((5, 1), (2, 1), (2, 1)).tolist() == [0, 0, 1, 1, -1]


def test_regrid_flow_splits_mass_and_score_copies():
    coarse, fine = TokenSpace((1, 2)), TokenSpace((2, 4))
    v = torch.tensor([[0.2, 0.8]])
    flow = regrid(v, coarse, fine)
    np.testing.assert_allclose(
        flow.view(2, 4).numpy(),
        [[0.05, 0.05, 0.2, 0.2], [0.05, 0.05, 0.2, 0.2]],
        rtol=1e-6,
    )
    assert float(flow.sum()) == pytest.approx(1.0)
    score = regrid(v, coarse, fine, SCORE).view(2, 4)
    np.testing.assert_allclose(
        score.numpy(), [[0.2, 0.2, 0.8, 0.8], [0.2, 0.2, 0.8, 0.8]]
    )


def test_regrid_drops_tokens_a_later_block_added():
    # VOLO: the class token joins before the class-attention blocks.
    v = torch.tensor([[0.5, 0.1, 0.2, 0.1, 0.1]])
    out = regrid(v, TokenSpace((2, 2), 1), TokenSpace((2, 2), 0))
    np.testing.assert_allclose(out.numpy(), [[0.1, 0.2, 0.1, 0.1]])
    with pytest.raises(ValueError, match='extra token'):
        regrid(out, TokenSpace((2, 2), 0), TokenSpace((2, 2), 1))


def test_regrid_refuses_a_finer_later_grid():
    with pytest.raises(ValueError, match='coarser'):
        regrid(torch.ones(1, 16), TokenSpace((4, 4)), TokenSpace((2, 2)))
