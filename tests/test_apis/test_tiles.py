"""Tiles at large scales: spans, blending, and tiled maps against untiled."""

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import nn

from mmcam_ext.apis import CAMInferencer, ViewOptions
from mmcam_ext.apis.data import InputLimits
from mmcam_ext.apis.views import (
    TILE_ALIGN,
    blend_tiles,
    input_tiles,
    tile_spans,
)
from mmcam_ext.errors import InputError, ResourceLimitError
from tests.helpers.models import SMALL_PIPELINE


@pytest.mark.parametrize(
    'length,tile,overlap',
    [(100, 128, 32), (300, 128, 32), (1000, 256, 64), (417, 96, 0)],
)
def test_tile_spans_cover_overlap_and_align(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert s1 % TILE_ALIGN == 0 and s0 < s1
        assert e0 - s1 >= overlap  # neighbours share the overlap
    for start, end in spans:
        assert end - start <= tile
        assert end - start > min(length, tile - TILE_ALIGN)


def test_input_tiles_only_above_the_tile_size():
    assert input_tiles((3, 128, 96), 128, 32) is None
    tiles = input_tiles((3, 200, 96), 128, 32)
    assert tiles == [((0, 128), (0, 96)), ((96, 200), (0, 96))]


def test_blend_of_crops_of_one_map_is_that_map():
    """Tiles that each hold the whole map's values blend back to it."""
    full = torch.rand(2, 300, 170, dtype=torch.float64)
    tiles = input_tiles(full.shape, 128, 40)
    assert len(tiles) == 8  # 4 rows (starts 0, 64, 128, 192) x 2 columns
    crops = [full[:, y0:y1, x0:x1] for (y0, y1), (x0, x1) in tiles]
    out = blend_tiles(crops, tiles, (300, 170), 40)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-12)


def test_blend_ignores_values_near_shared_edges():
    """Within a quarter overlap of a shared edge a tile does not count:
    garbage there leaves the blend exact."""
    full = torch.rand(1, 256, 96, dtype=torch.float64)
    tiles = input_tiles(full.shape, 160, 64)
    crops = []
    for (y0, y1), (x0, x1) in tiles:
        crop = full[:, y0:y1, x0:x1].clone()
        if y0 > 0:
            crop[:, :16] = 99.0  # 16 = overlap / 4
        if y1 < 256:
            crop[:, -16:] = -99.0
        crops.append(crop)
    out = blend_tiles(crops, tiles, (256, 96), 64)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-12)


@MODELS.register_module(force=True)
class LocalConvBackbone(BaseBackbone):
    """Convolutions only (stride 4, receptive field 15 px): a pixel's
    features depend on pixels at most 7 px away."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 8, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.ReLU(),
        )

    def forward(self, x):
        return (self.layers(x),)


def _local_model():
    from mmpretrain import get_model

    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='LocalConvBackbone'),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=3, in_channels=16),
            ),
            data_preprocessor=dict(
                num_classes=3, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True
            ),
            test_dataloader=dict(
                dataset=dict(type='CustomDataset', pipeline=SMALL_PIPELINE)
            ),
        )
    )
    torch.manual_seed(3)
    return get_model(cfg, pretrained=False).eval()


@pytest.fixture(scope='module')
def local():
    model = _local_model()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 120, 3), dtype=np.uint8)
    img[30:60, 70:100] = (20, 200, 240)
    # A photo, not pixel noise: smooth at the scale of the model's cells.
    return model, cv2.GaussianBlur(img, (0, 0), 2)


def _run(model, img, max_pixels=128 * 128, **view):
    inferencer = CAMInferencer(
        model,
        target_layers=['backbone.layers.5'],
        view=ViewOptions(whole_image=True, scales=(1, 4), **view),
        limits=InputLimits(max_input_pixels=max_pixels),
    )
    return inferencer(img, ('gradcam', 'layercam'), targets=[[0, 2]])[0]


def test_tiled_scale_agrees_with_the_untiled_map(local):
    """A model whose receptive field (15 px) is smaller than a quarter
    overlap (16 px): scale 4 (256x320 input) in 128-px tiles gives the
    untiled signed maps to float precision. The [0, 1] maps take the ReLU
    after the upsampling and the blend (untiled: before the upsampling):
    within 0.02 of the untiled [0, 1] maps, peaks in the same pixel."""
    model, img = local
    whole = _run(model, img, max_pixels=256 * 320)
    seen = []
    hook = model.register_forward_pre_hook(
        lambda mod, args: seen.append(tuple(args[0].shape))
    )
    try:  # the default limit would batch every tile: one tile per pass
        tiled = _run(model, img, 8_000_000, tile_size=128, tile_overlap=64)
    finally:
        hook.remove()
    big = [s for s in seen if s[-2:] != (64, 80)]  # not scale 1
    assert len(big) >= 9 and all(s[0] * s[2] * s[3] <= 128 * 128 for s in big)
    assert whole['frames'][1].input_shape == (256, 320)
    for method in ('GradCAM', 'LayerCAM'):
        np.testing.assert_allclose(
            tiled['raw_maps'][method],
            whole['raw_maps'][method],
            rtol=1e-4,
            atol=1e-5 * np.abs(whole['raw_maps'][method]).max(),
        )
        diff = np.abs(tiled['maps'][method] - whole['maps'][method])
        assert diff.max() < 0.02, diff.max()
        for k in range(2):
            assert np.argmax(tiled['maps'][method][k]) == np.argmax(
                whole['maps'][method][k]
            )


def test_untiled_large_scale_is_refused_by_the_input_limit(local):
    model, img = local
    with pytest.raises(ResourceLimitError, match='max_input_pixels'):
        _run(model, img)


def test_first_scale_is_never_tiled(local):
    model, img = local
    with pytest.raises(InputError, match='first scale'):
        CAMInferencer(
            model,
            view=ViewOptions(whole_image=True, scales=(4, 1), tile_size=128),
        )(img, targets=0)


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(tile_size=32), 'tile_size'),
        (dict(tile_size=128, tile_overlap=100), 'tile_overlap'),
        (dict(tile_overlap=16), 'tile_overlap'),
    ],
)
def test_tile_options_refuse_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        ViewOptions(**kwargs)
