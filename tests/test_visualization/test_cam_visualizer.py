"""CAMVisualizer: overlay colours, signed maps, grid layout, files,
backends."""

import cv2
import mmcv
import numpy as np
import pytest

from mmcam_ext.registry import VISUALIZERS
from mmcam_ext.visualization import CAMVisualizer, to_rgb
from mmcam_ext.visualization.cam_visualizer import MIN_PANEL_SIDE

GREY = np.full((64, 64, 3), 128, np.uint8)


def corner_map(size=8):
    cam = np.zeros((size, size), np.float32)
    cam[0, 0] = 1.0
    return cam


def test_overlay_peak_corner_is_red_with_jet():
    out = CAMVisualizer.overlay(GREY, corner_map(), alpha=0.5, colormap='jet')
    assert out.shape == GREY.shape and out.dtype == np.uint8
    r, g, b = out[0, 0].astype(int)
    assert r > g + 30 and r > b + 30, out[0, 0]
    # The cold opposite corner is blue in 'jet'.
    r, g, b = out[-1, -1].astype(int)
    assert b > r + 30 and b > g + 30, out[-1, -1]


def test_overlay_alpha_zero_is_identity_and_bad_alpha_raises():
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    np.testing.assert_array_equal(
        CAMVisualizer.overlay(img, corner_map(), alpha=0.0), img
    )
    with pytest.raises(ValueError, match='alpha'):
        CAMVisualizer.overlay(img, corner_map(), alpha=1.5)
    with pytest.raises(ValueError, match='2-D'):
        CAMVisualizer.overlay(img, np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match='colormap'):
        CAMVisualizer.overlay(img, corner_map(), colormap='nope')


def test_overlay_signed_diverges_around_zero():
    cam = np.zeros((64, 64), np.float32)
    cam[:, :20] = -1.0  # evidence against: blue side
    cam[:, 44:] = 0.5  # evidence for: red side (smaller, symmetric range)
    out = CAMVisualizer.overlay(GREY, cam, alpha=0.6, signed=True).astype(int)
    neg, mid, pos = out[32, 5], out[32, 32], out[32, 60]
    assert neg[2] > neg[0] + 30, neg
    assert pos[0] > pos[2] + 20, pos
    np.testing.assert_array_equal(mid, GREY[32, 32])  # zero leaves the image


def test_overlay_resizes_cam_to_image():
    img = np.zeros((48, 96, 3), np.uint8)
    cam = np.zeros((3, 6), np.float32)
    cam[:, -1] = 1.0
    out = CAMVisualizer.overlay(img, cam).astype(int)
    assert out.shape == (48, 96, 3)
    assert out[24, 95, 0] > out[24, 0, 0]  # hot right edge, cold left


@pytest.mark.parametrize('n_methods', [1, 3])
def test_grid_has_one_panel_per_method_plus_original(n_methods):
    vis = CAMVisualizer(name=f'grid{n_methods}')
    cams = {f'M{i}': np.random.rand(8, 8) for i in range(n_methods)}
    grid = vis.draw_cam(
        GREY,
        cams,
        pred_label=1,
        pred_score=0.5,
        target_label=1,
        classes=['a', 'b'],
        add_to_backends=False,
    )
    panel = MIN_PANEL_SIDE + 2  # upscaled 64 px image + 2 px separator
    assert grid.shape[1] == (1 + n_methods) * panel
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    with pytest.raises(ValueError, match='empty'):
        vis.draw_cam(GREY, {}, add_to_backends=False)


def test_out_file_keeps_colours_pure_red(tmp_path):
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    vis = CAMVisualizer(name='red')
    out = tmp_path / 'red.png'
    grid = vis.draw_cam(
        red,
        {'GradCAM': np.zeros((4, 4))},
        out_file=str(out),
        add_to_backends=False,
    )
    bgr = cv2.imread(str(out))
    y, x = grid.shape[0] - 10, 10  # inside the original-image panel
    np.testing.assert_array_equal(bgr[y, x], [0, 0, 255])
    np.testing.assert_array_equal(
        mmcv.imread(str(out), channel_order='rgb'), grid
    )


def test_grid_reaches_local_vis_backend(tmp_path):
    vis = VISUALIZERS.build(
        dict(
            type='CAMVisualizer',
            name='backend_test',
            vis_backends=[dict(type='LocalVisBackend')],
            save_dir=str(tmp_path),
        )
    )
    assert isinstance(vis, CAMVisualizer)
    grid = vis.draw_cam(
        GREY, {'GradCAM': corner_map()}, name='sample7', step=3
    )
    files = list(tmp_path.rglob('sample7_3.png'))
    assert len(files) == 1, list(tmp_path.rglob('*'))
    np.testing.assert_array_equal(
        mmcv.imread(str(files[0]), channel_order='rgb'), grid
    )


def test_to_rgb_flips_bgr_and_chw():
    bgr_chw = np.zeros((3, 5, 7), np.uint8)
    bgr_chw[0] = 200  # blue channel first in BGR
    rgb = to_rgb(bgr_chw, 'bgr')
    assert rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 200])
    with pytest.raises(ValueError, match='channel_order'):
        to_rgb(rgb, 'hsv')


@pytest.mark.parametrize('colormap', ['jet', 'RdBu_r', 'viridis'])
def test_colours_read_from_the_table_equal_matplotlibs(colormap):
    """The overlay reads the colormap's table directly (fast); its colours
    equal the colormap's own call on the clipped values, bit for bit."""
    import matplotlib

    from mmcam_ext.visualization.cam_visualizer import _colorize

    rng = np.random.default_rng(0)
    values = rng.uniform(-0.2, 1.2, (37, 23)).astype(np.float32)
    values[0, :4] = [0.0, 1.0, 0.5, np.nextafter(np.float32(1), 0)]
    want = matplotlib.colormaps[colormap](np.clip(values, 0.0, 1.0))[..., :3]
    np.testing.assert_array_equal(_colorize(values, colormap), want)
