"""The benchmark's scores on hand-made maps and a toy model."""

import numpy as np
import pytest
import torch

from benchmarks import score_maps
from benchmarks.quality import _demo_box, random_maps
from tests.helpers.region_model import RegionModel, object_map, scene


def test_score_maps_on_hand_made_maps():
    model, x = RegionModel(), scene()
    boxes = [(8, 4, 12, 8)] * 2  # x0, y0, x1, y1 of REGION
    maps = object_map().numpy()
    maps[1] = 0
    maps[1, 0, 0] = 1.0  # peak outside the box, all energy outside
    s = score_maps(model, x, maps, torch.zeros(2, dtype=torch.long), boxes, 4)
    assert s['pointing'] == 0.5
    assert s['energy'] == pytest.approx(0.5)
    assert s['chance_energy'] == pytest.approx(16 / 256)


def test_random_maps_are_smooth_and_seeded():
    a, b = random_maps(3, (32, 48)), random_maps(3, (32, 48))
    assert a.shape == (3, 32, 48) and np.array_equal(a, b)
    assert np.ptp(a) > 0.5


def test_demo_box_follows_the_test_pipeline():
    """ResizeEdge(256, short) then CenterCrop(224) on a 300x451 photo."""
    from mmengine.config import Config

    from mmcam_ext.apis.data import build_test_pipeline
    from mmcam_ext.demo import demo_config_path

    pipeline = build_test_pipeline(Config.fromfile(demo_config_path()))
    box = _demo_box(pipeline, (300, 451), (120, 60, 350, 275))
    scale = 256 / 300
    dx, dy = (round(451 * scale) - 224) / 2, (256 - 224) / 2
    expect = (
        120 * scale - dx,
        60 * scale - dy,
        350 * scale - dx,
        275 * scale - dy,
    )
    assert np.allclose(box, expect, atol=2)
