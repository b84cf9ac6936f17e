import numpy as np
import pytest
import torch

from mmcam_ext.utils.descriptors import (
    DESCRIPTOR_DIM,
    EVIDENCE_DIM,
    LAYOUT_SIDE,
    evidence_descriptors,
    projection,
    split_descriptors,
)


def _by_hand(acts, cam):
    """CAM-weighted pooling written out with loops (numpy, float64)."""
    acts, cam = acts.double().numpy(), cam.double().numpy().clip(min=0)
    b, c, h, w = acts.shape
    out = np.zeros((b, c))
    for i in range(b):
        total = cam[i].sum()
        for ch in range(c):
            out[i, ch] = (acts[i, ch] * cam[i]).sum() / total
    return out


def test_narrow_layer_is_cam_weighted_mean_zero_padded():
    torch.manual_seed(0)
    acts = torch.randn(3, 16, 8, 8)
    cam = torch.randn(3, 8, 8)
    desc = evidence_descriptors(acts, cam)
    assert desc.shape == (3, DESCRIPTOR_DIM)
    ev, layout = split_descriptors(desc)
    np.testing.assert_allclose(
        ev[:, :16].numpy(), _by_hand(acts, cam), rtol=1e-5, atol=1e-6
    )
    assert not ev[:, 16:].any()
    # layout: the map pooled to 8x8 (here its own size), peak 1
    relu = cam.clamp(min=0)
    want = relu / relu.flatten(1).max(1).values[:, None, None]
    np.testing.assert_allclose(
        layout.numpy(), want.flatten(1).numpy(), rtol=1e-6
    )


def test_wide_layer_is_projected_and_input_resolution_maps_are_pooled():
    torch.manual_seed(1)
    acts = torch.randn(2, 300, 7, 7)
    cam = torch.rand(2, 224, 224)
    desc = evidence_descriptors(acts, cam)
    # independent: pool the map by 32x32 blocks, weight, then project
    small = cam.view(2, 7, 32, 7, 32).mean((2, 4))
    want = torch.from_numpy(_by_hand(acts, small)).float() @ projection(300)
    np.testing.assert_allclose(
        desc[:, :EVIDENCE_DIM].numpy(), want.numpy(), rtol=1e-4, atol=1e-5
    )
    assert projection(300).shape == (300, EVIDENCE_DIM)
    assert torch.equal(projection(300), projection(300))


def test_projection_is_deterministic_across_processes_seed():
    a = projection(512).clone()
    from mmcam_ext.utils import descriptors

    descriptors._PROJECTIONS.clear()
    assert torch.equal(descriptors.projection(512), a)


def test_blank_map_gives_zero_not_nan_and_uniform_is_plain_mean():
    acts = torch.randn(2, 8, 4, 4)
    desc = evidence_descriptors(acts, torch.zeros(2, 4, 4))
    assert torch.isfinite(desc).all() and not desc.any()
    plain = evidence_descriptors(acts)
    np.testing.assert_allclose(
        plain[:, :8].numpy(), acts.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )
    assert plain[:, EVIDENCE_DIM:].shape[1] == LAYOUT_SIDE**2


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match='acts must be'):
        evidence_descriptors(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='maps must be'):
        evidence_descriptors(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match='values'):
        split_descriptors(np.zeros((2, 5)))
