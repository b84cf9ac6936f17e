"""The real-photo boxes file and the table it prints."""

import mmcv
import numpy as np
import pytest

from benchmarks.real_photos import (
    SETTINGS,
    load_objects,
    markdown_table,
)


def test_boxes_lie_in_their_photos_and_include_small_objects():
    objects = load_objects()
    photos = {o.photo for o in objects}
    assert len(photos) >= 4
    for photo in photos:
        assert sum(o.photo == photo for o in objects) >= 2
    for obj in objects:
        height, width = mmcv.imread(obj.path).shape[:2]
        for x0, y0, x1, y1 in obj.boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert 0 < obj.area < 0.6 and 0 <= obj.label < 1000
    assert sum(o.area < 0.06 for o in objects) >= 2  # small objects


def test_markdown_table_counts_strict_and_tolerant_hits():
    objects = load_objects()[:3]
    table = {
        s: {'GradCAM': [2, 1, 0], 'LayerCAM': [0, 0, 2]} for s in SETTINGS
    }
    cost = {
        'scales 1 2': [3.0, 2.0],
        'scale 1': [1.0, 1.0],
        'scale 2': [2.0, 1.0],
        'scales 1 2 (passes)': [8, 8],
        'ratio': [1.0, 1.0],
    }
    text = markdown_table(objects, table, cost)
    assert '| GradCAM | 1/3 (2) |' in text
    assert '| LayerCAM | 1/3 (1) |' in text
    first = next(line for line in text.splitlines() if objects[1].name in line)
    assert '| GC~ |' in first
    assert '| scales 1 2 | 2.500 [2.000, 3.000] |' in text
    assert '| 8 | - |' in text  # passes counted, pixels not given
    assert 'per round 1.000 [1.000, 1.000]; of the fastest rounds 1.000' in (
        text
    )


def _reason(peak, distance, ranks):
    from benchmarks.real_photos import MissReason

    obj = load_objects()[0]
    return MissReason(obj, 'GradCAM', peak, distance, ranks)


def test_distance_is_the_gap_the_tolerance_grows_over():
    from benchmarks.real_photos import TOLERANCE, _distance
    from mmcam_ext.evaluation.localization import pointing_game

    boxes = ((10, 20, 30, 40), (100, 0, 110, 5))
    cam = np.zeros((60, 130))
    for x, y in [(5, 25), (29, 39), (30, 39), (45, 56), (112, 3), (60, 10)]:
        cam[:] = 0
        cam[y, x] = 1
        dist = _distance((x, y), boxes)
        hit = any(pointing_game(cam, b, TOLERANCE) for b in boxes)
        assert hit == (dist <= TOLERANCE)
        strict = any(pointing_game(cam, b) for b in boxes)
        assert strict == (dist == 0)
    assert _distance((5, 25), boxes) == 5
    assert _distance((45, 56), boxes) == 17


def test_miss_reason_names_what_bounds_the_miss():
    unseen = _reason(
        (1, 1), 200, ((1.0, 37, 0.001, 73.0), (2.0, 12, 0.002, 36.0))
    )
    assert 'hardly sees the class: rank 12 of 1000' in unseen.bound
    coarse = _reason((1, 1), 30, ((1.0, 2, 0.1, 73.0), (2.0, 3, 0.05, 36.0)))
    assert "within one feature cell (36 px): the map's resolution" in (
        coarse.bound
    )
    elsewhere = _reason((1, 1), 150, ((1.0, 1, 0.3, 73.0),))
    assert 'ranks the class 1' in elsewhere.bound
    assert 'lies outside the box' in elsewhere.bound
    assert elsewhere.line().startswith(f'- {elsewhere.obj.name} (')


def test_memory_figures_come_from_proc():
    from benchmarks.memory import status_kib

    assert status_kib('VmHWM') >= status_kib('VmRSS') > 0
    with pytest.raises(KeyError):
        status_kib('NoSuchField')
