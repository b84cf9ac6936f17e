"""Streaming dumps: rows committed as their maps reach disk, a writer that
stops at any point leaves a readable partial dump, torn tails are dropped,
``dump finish`` builds the tables, descriptors read back."""

import json
import sqlite3
import warnings

import numpy as np
import pytest

from mmcam_ext.__main__ import main as cli_main
from mmcam_ext.errors import InputError
from mmcam_ext.fileio import (
    CAMDump,
    CAMSample,
    CAMWriter,
    PartialDumpWarning,
    WriterOptions,
    load_cam,
    load_cams,
    load_descriptors,
    shard_paths,
)
from mmcam_ext.fileio.map_store import HEADER_BYTES
from mmcam_ext.visualization.dump_tables import finish_dump

METHODS = ('GradCAM', 'LayerCAM')
KINDS = ('pred', 'gt')
DIM = 12


def _overlay(image, cam):
    return (image * np.clip(cam, 0, 1)[..., None]).astype(np.uint8)


def _sample(i, rng):
    return CAMSample(
        index=i,
        stem=f'{i:06d}',
        image=(rng.random((16, 20, 3)) * 255).astype(np.uint8),
        maps={m: rng.random((2, 16, 20)).astype(np.float32) for m in METHODS},
        kinds=list(KINDS),
        targets=[i % 3, 1],
        target_scores=[0.5, 0.2],
        descriptors={
            m: rng.standard_normal((2, DIM)).astype(np.float32)
            for m in METHODS
        },
        info=dict(
            img_path=f'{i}.png',
            gt=1,
            pred=i % 3,
            score=0.5,
            misclassified=i % 3 != 1,
            rank=0,
        ),
    )


def _stopped_dump(folder, done, expected, **opts):
    """A writer that explained ``done`` samples of ``expected`` and then
    stopped without closing (as a killed run leaves it)."""
    options = WriterOptions(save_raw=True, max_pending=0, **opts)
    writer = CAMWriter(folder, options, _overlay)
    writer.set_meta(dict(methods=list(METHODS), classes=['a', 'b', 'c']))
    writer.expect(range(expected))
    rng = np.random.default_rng(0)
    samples = [_sample(i, rng) for i in range(done)]
    for sample in samples:
        writer.add(sample)
    return writer, samples


def _check_rows(rows_maps, samples):
    """Every row's map and descriptor is its own sample's."""
    by_index = {s.index: s for s in samples}
    for row, cam in rows_maps:
        s = by_index[row['dataset_index']]
        k = KINDS.index(row['target_kind'])
        np.testing.assert_allclose(cam, s.maps[row['method']][k], atol=2**-10)


def test_a_stopped_writer_leaves_a_readable_partial_dump(tmp_path):
    writer, samples = _stopped_dump(tmp_path, 7, 10)
    assert not (tmp_path / 'index.json').exists()
    with pytest.warns(PartialDumpWarning, match='3 expected sample'):
        dump = CAMDump(tmp_path)
    assert dump.partial and dump.missing == [7, 8, 9] and dump.torn == 0
    assert len(dump.rows) == 7 * 2 * 2
    _check_rows(list(dump), samples)
    with pytest.warns(PartialDumpWarning):
        cam = load_cam(tmp_path, 3, 'LayerCAM', 'gt')
    np.testing.assert_allclose(cam, samples[3].maps['LayerCAM'][1], atol=1e-3)
    writer.close()


def test_rows_are_queryable_with_sqlite(tmp_path):
    _stopped_dump(tmp_path, 6, 6)
    (path,) = shard_paths(tmp_path)
    with sqlite3.connect(path) as db:
        got = db.execute(
            'SELECT DISTINCT dataset_index FROM named_rows '
            "WHERE misclassified AND pred_name = 'c' ORDER BY 1"
        ).fetchall()
    assert [g[0] for g in got] == [2, 5]  # pred = i % 3 == 2, gt = 1


def test_a_torn_tail_is_detected_and_its_rows_dropped(tmp_path):
    _stopped_dump(tmp_path, 5, 5)
    path = tmp_path / 'maps' / 'GradCAM_pred_16x20.npy'
    row_bytes = 16 * 20 * 2
    assert path.stat().st_size == HEADER_BYTES + 5 * row_bytes
    # the last map only half on disk (a write cut by a kill)
    with open(path, 'r+b') as f:
        f.truncate(HEADER_BYTES + 4 * row_bytes + row_bytes // 2)
    with pytest.warns(PartialDumpWarning, match='1 row'):
        dump = CAMDump(tmp_path)
    assert dump.torn == 1
    gone = [
        r
        for r in dump.rows
        if r['dataset_index'] == 4
        and (r['method'], r['target_kind']) == ('GradCAM', 'pred')
    ]
    assert gone == [] and len(dump.rows) == 5 * 4 - 1


def test_bytes_past_the_committed_rows_are_ignored(tmp_path):
    _, samples = _stopped_dump(tmp_path, 4, 4)
    # a map appended but never committed, then half of another
    with open(tmp_path / 'maps' / 'LayerCAM_gt_16x20.npy', 'ab') as f:
        f.write(np.ones((16, 20), np.float16).tobytes())
        f.write(b'\x00' * 100)
    with pytest.warns(PartialDumpWarning):
        pairs = load_cams(tmp_path, method='LayerCAM', target='gt')
    assert sorted(r['dataset_index'] for r, _ in pairs) == [0, 1, 2, 3]
    _check_rows(pairs, samples)


def test_finish_builds_index_gallery_and_report(tmp_path, capsys):
    _, samples = _stopped_dump(tmp_path, 6, 9)
    assert cli_main(['dump', 'finish', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '3 of 9 expected sample(s) missing' in out and '6, 7, 8' in out
    meta = json.loads((tmp_path / 'index.json').read_text())
    assert meta['partial'] is True and meta['missing'] == [6, 7, 8]
    assert meta['classes'] == ['a', 'b', 'c']
    assert len(meta['rows']) == 6 * 4
    assert (tmp_path / 'index.html').is_file()
    assert (tmp_path / 'false_positives.html').is_file()
    # sealed arrays load with plain NumPy, row for row
    arr = np.load(tmp_path / 'maps' / 'GradCAM_gt_16x20.npy')
    assert arr.shape == (6, 16, 20)
    np.testing.assert_allclose(arr[2], samples[2].maps['GradCAM'][1], 1e-3)
    # the thumbnail sheets were never written: no reference to them
    assert all(r['thumb'] == '' for r in meta['rows'])
    with pytest.warns(PartialDumpWarning, match='finished after'):
        dump = CAMDump(tmp_path)
    assert dump.missing == [6, 7, 8]
    _check_rows(list(dump), samples)
    # a finished dump is never overwritten
    assert cli_main(['dump', 'finish', str(tmp_path)]) == 2
    assert 'never overwritten' in capsys.readouterr().err


def test_finish_refuses_what_is_not_a_dump(tmp_path):
    with pytest.raises(InputError, match='not a CAM dump'):
        finish_dump(tmp_path)


def test_a_closed_writer_is_complete_and_silent(tmp_path):
    writer, samples = _stopped_dump(tmp_path / 'd', 3, 3)
    assert writer.close() == []
    from mmcam_ext.visualization.dump_tables import write_tables

    write_tables(tmp_path / 'd', writer.read_rows(), {})
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dump = CAMDump(tmp_path / 'd')
    assert not dump.partial and len(dump.rows) == 12
    _check_rows(list(dump), samples)


def test_descriptors_are_stored_beside_the_maps(tmp_path):
    writer, samples = _stopped_dump(tmp_path, 5, 5)
    writer.close()
    with pytest.warns(PartialDumpWarning):
        rows, desc = load_descriptors(tmp_path, method='GradCAM')
    assert desc.dtype == np.float32 and desc.shape == (10, DIM)
    for row, vec in zip(rows, desc):
        k = KINDS.index(row['target_kind'])
        want = samples[row['dataset_index']].descriptors['GradCAM'][k]
        np.testing.assert_allclose(vec, want, rtol=1e-3, atol=1e-3)
        assert (
            row['desc_file'] == f'descriptors/GradCAM_{row["target_kind"]}.npy'
        )
    arr = np.load(tmp_path / 'descriptors' / 'GradCAM_pred.npy', 'r')
    assert arr.dtype == np.float16 and arr.shape == (5, DIM)


def test_descriptors_off(tmp_path):
    writer, _ = _stopped_dump(tmp_path, 2, 2, descriptors=False)
    writer.close()
    assert not (tmp_path / 'descriptors').exists()
    with pytest.warns(PartialDumpWarning):
        with pytest.raises(InputError, match='save_raw=True'):
            load_descriptors(tmp_path)


def test_ranks_shards_are_read_alone_or_together(tmp_path):
    rng = np.random.default_rng(1)
    for rank in (0, 1):
        opts = WriterOptions(save_raw=True, suffix=f'.rank{rank}')
        writer = CAMWriter(tmp_path, opts, _overlay)
        writer.expect([rank, rank + 2])
        writer.add(_sample(rank, rng))
        if rank == 0:
            writer.close()  # rank 1 'dies' with its writer open
        else:
            writer.flush()
    with pytest.warns(PartialDumpWarning):
        both = CAMDump(tmp_path)
    with pytest.warns(PartialDumpWarning):
        one = CAMDump(tmp_path, rank=1)
    assert {r['dataset_index'] for r in both.rows} == {0, 1}
    assert {r['dataset_index'] for r in one.rows} == {1}
    assert both.missing == [2, 3] and one.missing == [3]


@pytest.mark.parametrize(
    'opts, match',
    [
        (dict(raw_dtype='int8'), 'raw_dtype'),
        (dict(raw_downsample=0), 'raw_downsample'),
        (dict(outputs=[dict(type='NoSuchOutput')]), 'NoSuchOutput'),
        (dict(outputs=['MapStoreOutput']), 'config dicts'),
    ],
)
def test_writer_options_are_checked(opts, match):
    with pytest.raises(ValueError, match=match):
        WriterOptions(**opts)


def test_signed_maps_are_stored_as_float32():
    opts = WriterOptions(raw_dtype='float16', signed=True)
    assert opts.store_dtype == 'float32'


def test_info_and_unknown_missing(tmp_path, capsys):
    options = WriterOptions(save_raw=True, max_pending=0)
    writer = CAMWriter(tmp_path, options, _overlay)  # nothing expected
    rng = np.random.default_rng(0)
    for i in range(3):
        writer.add(_sample(i, rng))
    assert cli_main(['dump', 'info', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'partial dump, 3 sample(s), 12 row(s)' in out
    assert cli_main(['dump', 'finish', str(tmp_path)]) == 0
    assert 'missing samples are unknown' in capsys.readouterr().out
    assert cli_main(['dump', 'info', str(tmp_path)]) == 0
    assert 'partial dump, 3 sample(s)' in capsys.readouterr().out
    writer.close()


def test_an_unreadable_index_file_is_named(tmp_path, capsys):
    (tmp_path / 'index.sqlite').write_text('not a database')
    with pytest.raises(InputError, match='index.sqlite is not a readable'):
        load_cams(tmp_path)
    assert cli_main(['dump', 'info', str(tmp_path)]) == 2
    assert 'index.sqlite is not a readable CAM index' in (
        capsys.readouterr().err
    )
