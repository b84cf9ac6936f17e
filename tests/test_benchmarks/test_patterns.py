"""The planted error-patterns benchmark, small: the machinery works (the
headline targets are the full run's, printed by
tools/benchmark_patterns.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.patterns import (
    QUICK,
    explain_pool,
    format_report,
    fp_rate_at_recall,
    run_patterns_benchmark,
)
from benchmarks.patterns_data import CAUSES, build_model, draw_split, to_tensor
from mmcam_ext.utils.descriptors import evidence_descriptors


def test_fp_rate_at_recall_against_a_count():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.85, 0.65, 0.1, 0.55, 0.3])
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    # 80 % recall keeps the four best positives: threshold 0.6
    assert fp_rate_at_recall(scores, labels, 0.8) == pytest.approx(2 / 5)
    assert fp_rate_at_recall(scores, labels, 1.0) == pytest.approx(3 / 5)


def test_explain_pool_descriptors_are_cam_weighted_target_features():
    model = build_model(width=4).eval()
    images = draw_split(3, 3, 0.3, seed=0)['images']
    res = explain_pool(model, images)
    with torch.no_grad():
        acts = model.backbone.conv3(
            model.backbone.conv2(model.backbone.conv1(to_tensor(images)))
        )
    maps = torch.from_numpy(res['maps'])
    np.testing.assert_allclose(
        res['desc'], evidence_descriptors(acts, maps).numpy(), atol=1e-5
    )
    # plain: the features averaged over the grid, zero-padded
    plain = acts.mean((2, 3)).numpy()
    np.testing.assert_allclose(res['plain'][:, :16], plain, atol=1e-5)
    assert (res['pred'] == res['target']).all()


@pytest.mark.slow
def test_quick_run_recovers_causes_better_than_chance(tmp_path):
    torch.set_num_threads(2)
    # the weights tools/benchmark_patterns.py caches (trained if absent)
    cache = Path(__file__).resolve().parents[2] / 'work_dirs/patterns_bench'
    result = run_patterns_benchmark(QUICK, tmp_path, cache)
    rec = result['recovery']
    assert set(rec) == set(CAUSES)
    assert all(rec[c]['fps'] > 0 for c in CAUSES)
    ours = np.mean([rec[c]['ours']['f1'] for c in CAUSES])
    rand = np.mean([rec[c]['random']['f1'] for c in CAUSES])
    plain = np.mean([rec[c]['plain']['f1'] for c in CAUSES])
    assert ours > rand + 0.2, (ours, rand)
    assert ours > plain, (ours, plain)
    for c in CAUSES:
        m = result['mining'][c]
        if m['pattern'] is not None:
            assert m['p_at_50'] > m['base_rate']
    fix = result['fix']
    assert 0 <= fix['mined'] <= 1 and fix['extra'] > 0
    text = format_report(result)
    assert '(a) pattern recovery' in text and '(c) FP rate' in text
