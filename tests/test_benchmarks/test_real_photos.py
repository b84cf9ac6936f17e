"""The real-photo boxes file and the table it prints."""

import mmcv

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
    text = markdown_table(objects, table, {'ratio': [1.0, 1.1]})
    assert '| GradCAM | 1/3 (2) |' in text
    assert '| LayerCAM | 1/3 (1) |' in text
    first = next(line for line in text.splitlines() if objects[1].name in line)
    assert '| GC~ |' in first
    assert '- ratio: 1.050 [1.000, 1.100]' in text
