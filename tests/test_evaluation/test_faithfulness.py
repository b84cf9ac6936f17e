"""Deletion / insertion AUC and saliency order on a toy model."""

import pytest
import torch

from mmcam_ext.evaluation import deletion_insertion_auc, saliency_order
from tests.helpers.region_model import SIZE, RegionModel, object_map, scene


def test_deletion_insertion_rank_a_faithful_map_above_its_inverse():
    model, x = RegionModel(), scene()
    targets = torch.zeros(2, dtype=torch.long)
    good = object_map()
    d_good, i_good = deletion_insertion_auc(model, x, good, targets, 8)
    d_bad, i_bad = deletion_insertion_auc(model, x, 1 - good, targets, 8)
    assert (d_good < d_bad - 0.1).all()
    assert (i_good > i_bad + 0.1).all()


def test_auc_of_a_constant_score_is_that_score():
    """Inputs that do not change the logits: AUC = the probability."""
    model, x = RegionModel(), torch.zeros(1, 3, SIZE, SIZE)
    targets = torch.ones(1, dtype=torch.long)
    prob = model(x).softmax(-1)[0, 1].item()
    dele, ins = deletion_insertion_auc(
        model, x, torch.rand(1, SIZE, SIZE), targets, 4
    )
    assert dele.item() == pytest.approx(prob)
    assert ins.item() == pytest.approx(prob)


def test_saliency_order_ranks_salient_first_and_breaks_ties():
    maps = torch.tensor([[[0.0, 3.0], [1.0, 2.0]]])
    assert saliency_order(maps).tolist() == [[3, 0, 2, 1]]
    flat = saliency_order(torch.zeros(1, 8, 8))[0]
    assert sorted(flat.tolist()) == list(range(64))  # a permutation
    assert flat.tolist() != list(range(64))  # not raster order
