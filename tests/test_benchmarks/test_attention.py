"""Attention methods on a trained tiny Swin (windows, shifts, patch merging):
they localise the object, and class-specific maps follow the class on
images that hold two objects (``benchmarks/attention.py``)."""

import numpy as np
import pytest

from benchmarks.attention import (
    AttentionCase,
    AttentionRow,
    PairRow,
    markdown,
    pair_images,
    run_case,
)
from benchmarks.datasets.shapes_train import shapes_config
from mmcam_ext.apis.cam_engine import CAMEngine


def test_pair_images_hold_two_disjoint_objects_of_two_classes():
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    cfg = shapes_config('swin', 'unused')
    model = MODELS.build(cfg.model).eval()
    inputs, classes, boxes = pair_images(cfg, model, 12, (64, 64))
    assert inputs.shape == (12, 3, 64, 64)
    assert (classes[:, 0] != classes[:, 1]).all()
    assert len({tuple(c) for c in classes.tolist()}) == 6  # every pair
    for a, b in boxes:
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_markdown_tables():
    row = AttentionRow('m', 'rollout', 'all', 0.5, 0.25, 0.15, 0.4, 0.9, 1.0)
    pair = PairRow('m', 'rollout', 0.3, 0.3, 0.2, 0.2)
    text = markdown([row], [pair], ['- note'])
    assert (
        '| m | rollout | all | 50.0% | 25.0% (15.0%) | 0.400 | 0.900 |' in text
    )
    assert '| m | rollout | 30.0% | 30.0% | 20.0% | 20.0% |' in text
    assert text.endswith('- note')


CASE = AttentionCase(
    'swin', 'tiny swin', 20, extra_cfg={'shapes_data.train_per_class': 60}
)


@pytest.fixture(scope='module')
def trained_swin(tmp_path_factory):
    """Train once (about a minute on 2 cores); scores and the model."""
    from benchmarks.datasets.shapes_train import train_shapes_classifier
    from mmcam_ext.apis.inferencer import build_model

    work = str(tmp_path_factory.mktemp('attn_swin'))
    rows, pairs, acc = run_case(CASE, work, steps=4, pairs=30)
    cfg, ckpt = train_shapes_classifier(  # cached: the same run
        CASE.arch, work, CASE.epochs, CASE.size, 0, CASE.extra_cfg
    )
    return dict(
        rows={r.method: r for r in rows},
        pairs={p.method: p for p in pairs},
        accuracy=acc,
        cfg=cfg,
        model=build_model(cfg, ckpt),
    )


@pytest.mark.slow
def test_attention_methods_localise_on_a_trained_swin(trained_swin):
    rows = trained_swin['rows']
    assert trained_swin['accuracy'] >= 0.65
    chance = rows['random (chance)']
    for method in (
        'attention_rollout (mean)',
        'attention_relevance',
        'grad_attention',
    ):
        row = rows[method]
        assert row.pointing >= 0.45, (method, row.pointing)
        assert row.energy >= chance.chance_energy + 0.1, (method, row.energy)
        assert row.pointing >= chance.pointing + 0.3, method


@pytest.mark.slow
def test_class_specific_maps_follow_the_class_on_two_object_images(
    trained_swin,
):
    pairs = trained_swin['pairs']
    for method in ('grad_attention', 'attention_relevance'):
        p = pairs[method]
        assert p.own_box >= p.other_box + 0.15, (method, p)
        assert p.own_energy > p.other_energy, (method, p)
    rollout = pairs['attention_rollout (mean)']
    assert rollout.own_box == rollout.other_box  # the same map twice


@pytest.mark.slow
def test_maps_for_two_classes_differ_on_a_two_object_image(trained_swin):
    """Directly on the maps: class-specific ones differ, rollout's do not."""
    model = trained_swin['model']
    inputs, classes, _ = pair_images(trained_swin['cfg'], model, 6, (64, 64))
    engine = CAMEngine(model)
    for name, specific in (
        ('grad_attention', True),
        ('attention_relevance', True),
        ('attention_rollout', False),
    ):
        res = engine.explain(inputs, [name], targets=classes.numpy())
        maps = next(iter(res.maps.values()))  # (N, 2, H, W)
        diff = np.abs(maps[:, 0] - maps[:, 1]).mean(axis=(1, 2))
        if specific:
            assert (diff > 0.02).all(), (name, diff)
        else:
            np.testing.assert_array_equal(maps[:, 0], maps[:, 1])
