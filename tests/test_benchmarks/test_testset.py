"""The whole-test-set rows: every method runs in the loop's own forward,
each figure is finite, the floor is measured."""

import math

import pytest

from benchmarks.testset import EverySampleCase, every_sample_rows

pytestmark = pytest.mark.slow  # builds Runners and runs test() 8 times


def test_attention_rows_take_the_in_loop_path(tmp_path):
    case = EverySampleCase('DeiT-tiny@32', 'deit-tiny_4xb256_in1k', 32)
    r = every_sample_rows(
        case, num=3, batch=3, repeats=1, root=str(tmp_path), compare=True
    )
    assert r['samples'] == 3
    general = 'grad_attention, general path'
    assert set(r['ratio']) == {*case.methods, general}
    assert r['paths'][general].startswith('general path')
    assert set(r['floor']) == {'grad_attention', 'attention_relevance'}
    for name in case.methods:
        assert r['paths'][name].startswith('in-loop attention'), name
        assert math.isfinite(r['ratio'][name].median)
        assert r['ratio'][name].median > 0
        assert r['cpu_ratio'][name].median > 0
    assert r['floor_s'].median > 0
    assert r['recompute_s'].median > 0  # DeiT's kernels are kept


def test_gradcam_profile_variants(tmp_path):
    case = EverySampleCase(
        'ResNet-18@32',
        'resnet18_8xb32_in1k',
        32,
        methods=('GradCAM',),
        floor=False,
    )
    r = every_sample_rows(case, 3, 3, 1, str(tmp_path), profile=True)
    assert set(r['ratio']) == {
        'GradCAM',
        'GradCAM, with PNGs',
        'GradCAM, no gallery/thumbs',
        'GradCAM, no report',
        'GradCAM, raw store',
        'GradCAM, raw store, no descriptors',
    }
    assert r['floor'] == {}
    # the descriptors' share: one value per round, from the two raw rows
    share = r['descriptors']
    assert len(share.values) == 1
    on = r['extra']['GradCAM, raw store'].values[0] + r['without'].values[0]
    off = (
        r['extra']['GradCAM, raw store, no descriptors'].values[0]
        + r['without'].values[0]
    )
    assert share.values[0] == pytest.approx(on / off - 1)
