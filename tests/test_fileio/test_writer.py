"""The shared writer: rows, files per dump, thumbnails, errors."""

import cv2
import numpy as np
import pytest

from mmcam_ext.fileio import (
    CAMWriter,
    SampleCAMs,
    WriterOptions,
    center_energy,
    dump_files,
    load_cams,
    parse_thumb,
    write_index,
)
from mmcam_ext.fileio.thumbs import SHEET_COLS, TILE_SIZE, fit_tile


def _overlay(image, cam):
    """A simple, exactly reproducible overlay for the tests."""
    return (image * np.clip(cam, 0, 1)[..., None]).astype(np.uint8)


def _smooth(rng, shape, scale=1.0):
    """Smooth random content (JPEG tiles stay close to it)."""
    small = rng.random((3, 4, *shape[2:]), dtype=np.float32) * scale
    return cv2.resize(small, shape[1::-1], interpolation=cv2.INTER_LINEAR)


def _samples(num, methods=('GradCAM', 'LayerCAM'), kinds=('pred', 'gt')):
    rng = np.random.default_rng(0)
    for i in range(num):
        yield SampleCAMs(
            index=100 + i,
            stem=f'{100 + i:06d}',
            image=_smooth(rng, (24, 32, 3), 255).astype(np.uint8),
            maps={
                m: np.stack([_smooth(rng, (24, 32)) for _ in kinds])
                for m in methods
            },
            kinds=list(kinds),
            targets=[i % 3, 2][: len(kinds)],
            target_scores=[0.6, 0.1][: len(kinds)],
            blank={m: np.array([False, True][: len(kinds)]) for m in methods},
            info=dict(
                img_path=f'{i}.png',
                gt=2,
                pred=i % 3,
                score=0.6,
                misclassified=i % 3 != 2,
                rank=0,
            ),
        )


def test_rows_and_maps_read_back(tmp_path):
    writer = CAMWriter(tmp_path, WriterOptions(save_raw=True), _overlay)
    samples = list(_samples(5))
    for s in samples:
        writer.add(s)
    assert writer.close() == []
    rows = writer.read_rows()
    write_index(tmp_path, rows, 'json')
    assert len(rows) == 5 * 2 * 2
    for row, cam in load_cams(tmp_path):
        s = samples[row['dataset_index'] - 100]
        k = s.kinds.index(row['target_kind'])
        np.testing.assert_allclose(cam, s.maps[row['method']][k], atol=2**-11)
        assert row['blank'] == (row['target_kind'] == 'gt')
        assert row['center_energy'] == pytest.approx(
            center_energy(s.maps[row['method']][k]), abs=1e-4
        )
        assert (tmp_path / row['file']).is_file()


def test_files_per_dump_grow_with_methods_not_samples(tmp_path):
    counts = {}
    for num in (3, 300):
        folder = tmp_path / str(num)
        writer = CAMWriter(
            folder, WriterOptions(save_raw=True, save_images=False), _overlay
        )
        for s in _samples(num):
            writer.add(s)
        assert writer.close() == []
        write_index(folder, writer.read_rows(), 'json')
        counts[num] = dump_files(folder)
    # index (+ its SQLite shard) + 4 map arrays + 5 thumbnail sheets, for
    # 3 or 300 samples
    assert counts[3] == counts[300] and len(counts[3]) == 11
    with_png = tmp_path / 'png'
    writer = CAMWriter(with_png, WriterOptions(), _overlay)
    for s in _samples(3):
        writer.add(s)
    writer.close()
    # PNGs + sheets + the SQLite shard
    assert len(dump_files(with_png)) == 3 * (1 + 4) + 5 + 1


def test_thumbnail_tiles_are_the_overlays(tmp_path):
    writer = CAMWriter(tmp_path, WriterOptions(), _overlay)
    samples = list(_samples(40))
    for s in samples:
        writer.add(s)
    writer.close()
    for row in writer.read_rows()[::7]:
        sheet, tile = parse_thumb(row['thumb'])
        picture = cv2.imread(str(tmp_path / sheet))[..., ::-1]
        r, c = divmod(tile, SHEET_COLS)
        got = picture[
            r * TILE_SIZE : (r + 1) * TILE_SIZE,
            c * TILE_SIZE : (c + 1) * TILE_SIZE,
        ].astype(float)
        s = samples[row['dataset_index'] - 100]
        k = s.kinds.index(row['target_kind'])
        image = cv2.resize(
            s.image, (TILE_SIZE, 48), interpolation=cv2.INTER_AREA
        )
        cam = cv2.resize(
            s.maps[row['method']][k],
            (TILE_SIZE, 48),
            interpolation=cv2.INTER_AREA,
        )
        want = fit_tile(_overlay(image, cam), TILE_SIZE).astype(float)
        assert np.abs(got - want).mean() < 3  # JPEG


def test_write_errors_are_returned_and_rows_never_point_at_bad_maps(
    tmp_path,
):
    blocker = tmp_path / 'dump'
    blocker.write_text('a file where the folder should be')
    writer = CAMWriter(blocker, WriterOptions(save_raw=True), _overlay)
    for s in _samples(2):
        writer.add(s)
    errors = writer.close()
    assert errors and all('dump' in e for e in errors)
    assert writer.read_rows() == []  # no index either: nothing points
    assert blocker.read_text() == 'a file where the folder should be'


def test_a_failed_map_file_leaves_its_rows_without_a_map(tmp_path):
    (tmp_path / 'maps').write_text('a file where the maps folder should be')
    writer = CAMWriter(tmp_path, WriterOptions(save_raw=True), _overlay)
    for s in _samples(3):
        writer.add(s)
    errors = writer.close()
    assert errors and all('MapStoreOutput' in e for e in errors)
    rows = writer.read_rows()
    assert len(rows) == 3 * 2 * 2  # the other writers' columns are there
    assert all(r['raw_file'] == '' and r['raw_row'] is None for r in rows)
    assert all((tmp_path / r['file']).is_file() for r in rows)


def test_center_energy():
    cam = np.zeros((40, 40), np.float32)
    assert center_energy(cam) == 0.0
    cam[15:25, 15:25] = 1.0
    assert center_energy(cam) == 1.0
    assert center_energy(np.ones((40, 40))) == pytest.approx(0.25)
    cam = np.zeros((40, 40))
    cam[0, 0] = 1
    assert center_energy(cam) == 0.0
