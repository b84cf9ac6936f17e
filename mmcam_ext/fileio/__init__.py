"""On-disk formats of CAM dumps: images, raw maps and the index."""

from .cam_dump import (
    INDEX_FIELDS,
    merge_rows,
    read_index,
    write_index,
    write_png,
)

__all__ = [
    'INDEX_FIELDS',
    'merge_rows',
    'read_index',
    'write_index',
    'write_png',
]
