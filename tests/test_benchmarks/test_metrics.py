"""The benchmark's scores on hand-made maps and a toy model."""
import numpy as np
import pytest
import torch
from torch import nn

from mmcam_ext.benchmarks import (deletion_insertion_auc, saliency_order,
                                  score_maps)
from mmcam_ext.benchmarks.quality import _demo_box, random_maps

SIZE = 16
REGION = (slice(4, 8), slice(8, 12))  # rows, cols of the "object"


class RegionModel(nn.Module):
    """Class 0 scores the mean brightness of REGION, class 1 is fixed."""

    def forward(self, x, mode='tensor'):
        region = x[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return torch.stack([10 * (region - 0.6), torch.zeros_like(region)],
                           1)


def _scene(batch=2):
    x = torch.zeros(batch, 3, SIZE, SIZE)
    x[:, :, REGION[0], REGION[1]] = 1.0
    return x


def _object_map(batch=2):
    m = torch.zeros(batch, SIZE, SIZE)
    m[:, REGION[0], REGION[1]] = 1.0
    return m


def test_deletion_insertion_rank_a_faithful_map_above_its_inverse():
    model, x = RegionModel(), _scene()
    targets = torch.zeros(2, dtype=torch.long)
    good = _object_map()
    d_good, i_good = deletion_insertion_auc(model, x, good, targets, 8)
    d_bad, i_bad = deletion_insertion_auc(model, x, 1 - good, targets, 8)
    assert (d_good < d_bad - 0.1).all()
    assert (i_good > i_bad + 0.1).all()


def test_auc_of_a_constant_score_is_that_score():
    """Inputs that do not change the logits: AUC = the probability."""
    model, x = RegionModel(), torch.zeros(1, 3, SIZE, SIZE)
    targets = torch.ones(1, dtype=torch.long)
    prob = model(x).softmax(-1)[0, 1].item()
    dele, ins = deletion_insertion_auc(model, x, torch.rand(1, SIZE, SIZE),
                                       targets, 4)
    assert dele.item() == pytest.approx(prob)
    assert ins.item() == pytest.approx(prob)


def test_saliency_order_ranks_salient_first_and_breaks_ties():
    maps = torch.tensor([[[0.0, 3.0], [1.0, 2.0]]])
    assert saliency_order(maps).tolist() == [[3, 0, 2, 1]]
    flat = saliency_order(torch.zeros(1, 8, 8))[0]
    assert sorted(flat.tolist()) == list(range(64))  # a permutation
    assert flat.tolist() != list(range(64))  # not raster order


def test_score_maps_on_hand_made_maps():
    model, x = RegionModel(), _scene()
    boxes = [(8, 4, 12, 8)] * 2  # x0, y0, x1, y1 of REGION
    maps = _object_map().numpy()
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
    expect = (120 * scale - dx, 60 * scale - dy, 350 * scale - dx,
              275 * scale - dy)
    assert np.allclose(box, expect, atol=2)
