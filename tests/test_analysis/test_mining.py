"""Mining a pool dump for look-alikes of each pattern."""

import json

import numpy as np
import pytest

from mmcam_ext.analysis import (
    MineOptions,
    annotation_lines,
    check_compatible,
    discover_patterns,
    mine_negatives,
)
from mmcam_ext.analysis.clustering import pattern_features
from mmcam_ext.analysis.dump_descriptors import load_descriptors
from mmcam_ext.errors import InputError
from tests.helpers.fake_dump import make_dump


@pytest.fixture
def setup(tmp_path):
    truth = make_dump(tmp_path / 'dump')
    doc = discover_patterns(tmp_path / 'dump')
    group = {
        p['id']: {truth[i] for i in p['samples']}.pop()
        for p in doc['patterns']
    }
    pool_truth = make_dump(tmp_path / 'pool', groups=(20, 20, 20), correct=40)
    return doc, group, tmp_path / 'pool', pool_truth


def test_ranking_equals_a_plain_cosine_ranking(setup):
    doc, group, pool, pool_truth = setup
    mined = mine_negatives(doc, pool, MineOptions(per_pattern=15))
    rows, desc = load_descriptors(pool)
    sel = [i for i, r in enumerate(rows) if r['target'] == 1]
    feats = pattern_features(desc[sel])
    for pat, got in zip(doc['patterns'], mined['patterns']):
        assert got['id'] == pat['id']
        c = np.array(pat['centroid'])
        sims = feats @ c / np.linalg.norm(feats, axis=1)
        want = [rows[sel[i]]['dataset_index'] for i in np.argsort(-sims)[:15]]
        assert got['dataset_index'] == want
        assert got['images'] == [
            rows[sel[i]]['img_path'] for i in np.argsort(-sims)[:15]
        ]
        # the planted group of the pattern fills the top of the ranking
        assert {pool_truth[i] for i in got['dataset_index']} == {
            group[pat['id']]
        }


def test_score_weight_adds_the_models_score(setup):
    doc, _, pool, _ = setup
    mined = mine_negatives(doc, pool, MineOptions(50, [0], score_weight=5.0))
    (pat,) = mined['patterns']
    rank = np.array(pat['similarity']) + 5.0 * np.array(pat['score'])
    assert list(rank) == sorted(rank, reverse=True)


def test_unknown_pattern_id_and_pool_of_another_model(setup, tmp_path):
    doc, _, pool, _ = setup
    with pytest.raises(InputError, match=r'Unknown pattern id\(s\) \[9\]'):
        mine_negatives(doc, pool, MineOptions(patterns=[9]))
    other = dict(doc, signature=dict(doc['signature'], num_classes=1000))
    with pytest.raises(
        InputError, match='num_classes 3 vs 1000|num_classes 1000 vs 3'
    ):
        mine_negatives(other, pool)
    other = dict(doc, signature=dict(doc['signature'], method='LayerCAM'))
    with pytest.raises(InputError, match="descriptors of \\['GradCAM'\\]"):
        mine_negatives(other, pool)
    make_dump(tmp_path / 'vit', meta=dict(model_fingerprint='vit-b16'))
    with pytest.raises(
        InputError, match="model None|model 'r50' vs 'vit-b16'"
    ):
        mine_negatives(
            dict(doc, signature=dict(doc['signature'], model='r50')),
            tmp_path / 'vit',
        )


def test_check_compatible_ignores_facts_one_side_lacks():
    check_compatible(
        dict(method='GradCAM', model=None), dict(method='GradCAM', model='x')
    )
    with pytest.raises(InputError, match='target_layers'):
        check_compatible(
            dict(target_layers=['backbone.layer4']),
            dict(target_layers=['backbone.layer3']),
        )


def test_pool_without_maps_of_the_class_names_the_flag(setup, tmp_path):
    doc, _, _, _ = setup
    make_dump(tmp_path / 'p2', groups=(0,), correct=20)
    with pytest.raises(InputError, match='--target-category 1'):
        mine_negatives(doc, tmp_path / 'p2')


def test_annotation_lines_unique_absolute_with_label(setup):
    doc, _, pool, _ = setup
    mined = mine_negatives(doc, pool, MineOptions(per_pattern=30))
    lines = annotation_lines(mined, 0)
    paths = [line.rsplit(' ', 1)[0] for line in lines]
    assert len(paths) == len(set(paths))
    assert all(line.endswith(' 0') for line in lines)
    assert set(paths) == {p for m in mined['patterns'] for p in m['images']}
    json.dumps(mined)
