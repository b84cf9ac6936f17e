"""The compact map store and its reader: maps read back as written."""

import json

import numpy as np
import pytest

from mmcam_ext.errors import InputError
from mmcam_ext.fileio import (
    CAMDump,
    MapStore,
    load_cam,
    load_cams,
    write_index,
)


def _store_maps(tmp_path, maps, **kw):
    store = MapStore(tmp_path, **kw)
    refs = []
    for cam in maps:
        rel, row = store.reserve('GradCAM', 'pred', cam.shape)
        store.append(rel, cam)
        refs.append((rel, row))
    store.close()
    return refs


def test_maps_share_one_file_and_read_back_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    maps = [rng.random((20, 30), dtype=np.float32) for _ in range(7)]
    refs = _store_maps(tmp_path, maps)
    assert {rel for rel, _ in refs} == {'maps/GradCAM_pred_20x30.npy'}
    assert [row for _, row in refs] == list(range(7))
    arr = np.load(tmp_path / refs[0][0], mmap_mode='r')
    assert arr.shape == (7, 20, 30) and arr.dtype == np.float16
    for cam, got in zip(maps, arr):
        # float16 keeps 11 significant bits: error <= 2**-11 on [0, 1]
        np.testing.assert_allclose(got, cam, atol=2**-11)


def test_sizes_and_ranks_get_their_own_files(tmp_path):
    store = MapStore(tmp_path, dtype='float32', suffix='.rank1')
    a = store.reserve('LayerCAM', 'gt', (4, 5))
    b = store.reserve('LayerCAM', 'gt', (6, 5))
    c = store.reserve('LayerCAM', 'gt', (4, 5))
    assert (a, b, c) == (
        ('maps/LayerCAM_gt_4x5.rank1.npy', 0),
        ('maps/LayerCAM_gt_6x5.rank1.npy', 0),
        ('maps/LayerCAM_gt_4x5.rank1.npy', 1),
    )
    for rel, _ in (a, b, c):
        store.append(rel, np.full((4 if '4x5' in rel else 6, 5), 0.25))
    assert sorted(store.close()) == [a[0], b[0]]
    assert np.load(tmp_path / a[0]).shape == (2, 4, 5)


def test_downsampled_store(tmp_path):
    cam = np.zeros((40, 60), np.float32)
    cam[:20, :30] = 1.0  # one quadrant
    ((rel, _),) = _store_maps(tmp_path, [cam], downsample=4)
    got = np.load(tmp_path / rel)[0]
    assert got.shape == (10, 15)
    np.testing.assert_allclose(got[:5, :7], 1.0)
    np.testing.assert_allclose(got[5:, 8:], 0.0)


def test_store_rejects_bad_options(tmp_path):
    with pytest.raises(InputError, match='float16'):
        MapStore(tmp_path, dtype='int8')
    with pytest.raises(InputError, match='downsample'):
        MapStore(tmp_path, downsample=0)


def _dump(tmp_path, fmt='json'):
    rng = np.random.default_rng(1)
    store = MapStore(tmp_path)
    rows, mem = [], {}
    for idx in (5, 2, 9):
        for kind, target in (('pred', 1), ('gt', 0)):
            for method in ('GradCAM', 'LayerCAM'):
                cam = rng.random((8, 8), dtype=np.float32)
                rel, row = store.reserve(method, kind, cam.shape)
                store.append(rel, cam)
                mem[idx, kind, method] = cam
                rows.append(
                    dict(
                        dataset_index=idx,
                        img_path=f'{idx}.png',
                        gt=0,
                        pred=1,
                        score=0.7,
                        misclassified=True,
                        target_kind=kind,
                        target=target,
                        target_score=0.5,
                        method=method,
                        blank=False,
                        center_energy=0.3,
                        file='',
                        raw_file=rel,
                        raw_row=row,
                        input_file='',
                        thumb='',
                        input_thumb='',
                        rank=0,
                    )
                )
    store.close()
    write_index(tmp_path, rows, fmt)
    return mem


@pytest.mark.parametrize('fmt', ['json', 'csv'])
def test_reader_filters_and_returns_the_written_maps(tmp_path, fmt):
    mem = _dump(tmp_path, fmt)
    got = load_cams(tmp_path, dataset_index=2, method='layer-cam')
    assert [(r['target_kind'], r['method']) for r, _ in got] == [
        ('pred', 'LayerCAM'),
        ('gt', 'LayerCAM'),
    ]
    for row, cam in got:
        assert isinstance(row['dataset_index'], int)  # typed, also from CSV
        assert row['misclassified'] is True
        np.testing.assert_allclose(
            cam, mem[2, row['target_kind'], 'LayerCAM'], atol=2**-11
        )
    assert len(load_cams(tmp_path, target=0)) == 6  # by class: the gt maps
    one = load_cam(tmp_path, 9, 'GradCAM', 'gt')
    np.testing.assert_allclose(one, mem[9, 'gt', 'GradCAM'], atol=2**-11)
    assert sum(1 for _ in CAMDump(tmp_path)) == 12


def test_reader_errors_name_what_the_dump_holds(tmp_path):
    _dump(tmp_path)
    with pytest.raises(InputError, match=r"\('GradCAM', 'gt'\)"):
        load_cam(tmp_path, 2, 'ScoreCAM')
    with pytest.raises(InputError, match='not a CAM dump'):
        load_cams(tmp_path / 'nowhere')
    index = json.loads((tmp_path / 'index.json').read_text())
    index['rows'][0]['raw_file'] = ''
    (tmp_path / 'index.json').write_text(json.dumps(index))
    with pytest.raises(InputError, match='save_raw'):
        load_cam(tmp_path, 5, 'GradCAM', 'pred')
