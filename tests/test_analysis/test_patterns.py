"""Pattern discovery on dumps with planted groups of false positives."""

import json

import numpy as np
import pytest

from mmcam_ext.analysis import (
    PatternOptions,
    discover_patterns,
    evidence_box,
    load_descriptors,
    pattern_features,
)
from mmcam_ext.analysis import clustering as clustering_mod
from mmcam_ext.errors import InputError
from mmcam_ext.utils.descriptors import DESCRIPTOR_DIM, EVIDENCE_DIM
from tests.helpers.fake_dump import make_dump


def _groups_of(doc, truth):
    return [sorted({truth[i] for i in p['samples']}) for p in doc['patterns']]


def test_reader_returns_each_rows_descriptor_from_all_shards(tmp_path):
    make_dump(tmp_path / 'd', shards=2)
    rows, desc = load_descriptors(tmp_path / 'd')
    assert desc.shape == (len(rows), DESCRIPTOR_DIM)
    assert {r['rank'] for r in rows} == {0, 1}
    for row, value in zip(rows, desc):
        stored = np.load(tmp_path / 'd' / row['desc_file'])
        np.testing.assert_array_equal(value, stored[row['desc_row']])


def test_planted_groups_are_recovered_exactly(tmp_path):
    truth = make_dump(tmp_path / 'd', groups=(14, 10, 8), shards=2)
    doc = discover_patterns(tmp_path / 'd')
    assert _groups_of(doc, truth) == [[0], [1], [2]]
    sizes = [p['size'] for p in doc['patterns']]
    members = {g: sum(1 for v in truth.values() if v == g) for g in range(3)}
    assert sorted(sizes, reverse=True) == [members[0], members[1], members[2]]
    # every false positive of class 1 is in exactly one pattern
    fps = sorted(i for i, g in truth.items() if g >= 0)
    assert sorted(i for p in doc['patterns'] for i in p['samples']) == fps
    assert doc['classes'][0]['other']['size'] == 0


def test_patterns_are_ranked_by_count_times_confidence(tmp_path):
    make_dump(tmp_path / 'd', groups=(6, 15, 9))
    doc = discover_patterns(tmp_path / 'd')
    rows, _ = load_descriptors(tmp_path / 'd')
    score = {r['dataset_index']: r['score'] for r in rows}
    expect = [
        len(p['samples']) * np.mean([score[i] for i in p['samples']])
        for p in doc['patterns']
    ]
    assert expect == sorted(expect, reverse=True)
    assert [p['rank'] for p in doc['patterns']] == [0, 1, 2]
    for p, e in zip(doc['patterns'], expect):
        assert p['rank_score'] == pytest.approx(e, abs=1e-3)
        assert p['share'] == pytest.approx(p['size'] / 30, abs=1e-4)


def test_same_seed_same_patterns_and_json_ready(tmp_path):
    make_dump(tmp_path / 'd')
    a = discover_patterns(tmp_path / 'd', PatternOptions(seed=3))
    b = discover_patterns(tmp_path / 'd', PatternOptions(seed=3))
    assert json.dumps(a) == json.dumps(b)


def test_where_and_typical_and_lookalikes(tmp_path):
    truth = make_dump(tmp_path / 'd')
    doc = discover_patterns(tmp_path / 'd')
    places = {0: 'top left', 1: 'bottom right', 2: 'top right'}
    for p in doc['patterns']:
        (group,) = {truth[i] for i in p['samples']}
        assert p['where']['text'] == places[group]
        assert set(p['typical']) <= set(p['samples'])
        # look-alikes: correct negatives only, nearest first; the correct
        # samples of the fake dump share group 0's evidence.
        sims = [x['similarity'] for x in p['lookalikes']]
        assert sims == sorted(sims, reverse=True)
        assert all(truth[x['dataset_index']] == -1 for x in p['lookalikes'])
        if group == 0:
            assert min(sims) > 0.95
        else:
            assert max(sims) < min(
                x['similarity']
                for q in doc['patterns']
                if {truth[i] for i in q['samples']} == {0}
                for x in q['lookalikes']
            )


def test_small_groups_fold_into_other(tmp_path):
    truth = make_dump(tmp_path / 'd', groups=(12, 12, 2))
    doc = discover_patterns(tmp_path / 'd', PatternOptions(min_size=3))
    other = doc['classes'][0]['other']
    in_patterns = {i for p in doc['patterns'] for i in p['samples']}
    small = {i for i, g in truth.items() if g == 2}
    assert small <= set(other['samples']) | in_patterns
    assert all(p['size'] >= 3 for p in doc['patterns'])
    assert other['size'] + len(in_patterns) == 26


def test_too_few_mistakes_says_so(tmp_path):
    make_dump(tmp_path / 'd', groups=(2, 1))
    doc = discover_patterns(tmp_path / 'd')
    (entry,) = doc['classes']
    assert doc['patterns'] == []
    assert (
        'too few' in entry['skipped'] and '3 fp mistakes' in entry['skipped']
    )


def test_classes_by_name_and_index_and_unknown(tmp_path):
    make_dump(tmp_path / 'd')
    by_name = discover_patterns(
        tmp_path / 'd', PatternOptions(classes=['cat'])
    )
    by_index = discover_patterns(tmp_path / 'd', PatternOptions(classes=[1]))
    assert by_name['patterns'] == by_index['patterns']
    with pytest.raises(InputError, match="Unknown class 'cow'"):
        discover_patterns(tmp_path / 'd', PatternOptions(classes=['cow']))
    with pytest.raises(InputError, match='out of range'):
        discover_patterns(tmp_path / 'd', PatternOptions(classes=[7]))


def test_fn_errors_group_the_missed_class(tmp_path):
    truth = make_dump(tmp_path / 'd')
    doc = discover_patterns(tmp_path / 'd', PatternOptions(errors='fn'))
    # every mistake has ground truth 0 (background), predicted 1
    assert [c['cls'] for c in doc['classes']] == [0]
    fps = sorted(i for i, g in truth.items() if g >= 0)
    assert sorted(i for p in doc['patterns'] for i in p['samples']) == fps


def test_dump_without_descriptors_says_how_to_get_them(tmp_path):
    make_dump(tmp_path / 'd', descriptors=False)
    with pytest.raises(InputError, match='save_raw=True.*--save-raw'):
        discover_patterns(tmp_path / 'd')


def test_missing_folder_and_unknown_method(tmp_path):
    with pytest.raises(InputError, match='does not exist'):
        discover_patterns(tmp_path / 'nope')
    make_dump(tmp_path / 'd')
    with pytest.raises(
        InputError, match="no descriptors for method 'layercam'"
    ):
        discover_patterns(tmp_path / 'd', PatternOptions(method='layercam'))


def test_missing_sklearn_names_the_extra(tmp_path, monkeypatch):
    make_dump(tmp_path / 'd')
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith('sklearn'):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake)
    with pytest.raises(
        InputError, match=r'pip install "mmcam_ext\[analysis\]"'
    ):
        clustering_mod.require_sklearn()
    with pytest.raises(InputError, match='mmcam_ext\\[analysis\\]'):
        discover_patterns(tmp_path / 'd')


def test_features_are_unit_evidence_plus_weighted_layout():
    rng = np.random.default_rng(0)
    desc = rng.random((5, DESCRIPTOR_DIM)).astype(np.float32)
    f0 = pattern_features(desc)
    np.testing.assert_allclose(
        f0,
        desc[:, :EVIDENCE_DIM]
        / np.linalg.norm(desc[:, :EVIDENCE_DIM], axis=1, keepdims=True),
        rtol=1e-6,
    )
    f1 = pattern_features(desc, 0.5)
    lay = desc[:, EVIDENCE_DIM:]
    np.testing.assert_allclose(
        f1[:, EVIDENCE_DIM:],
        0.5 * lay / np.linalg.norm(lay, axis=1, keepdims=True),
        rtol=1e-6,
    )


def test_evidence_box_maps_the_high_region_to_image_pixels():
    cam = np.zeros((8, 8), np.float32)
    cam[2:4, 5:7] = 1.0
    cam[0, 0] = 0.4  # below half the peak: outside
    assert evidence_box(cam, (64, 32)) == (20, 16, 28, 32)
    assert evidence_box(np.zeros((8, 8)), (64, 64)) is None
