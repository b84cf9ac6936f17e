"""On-disk formats of CAM dumps: the index, the compact map store,
thumbnail sheets, and the one writer the hook and the tool share."""

from .background import BackgroundWriter
from .cam_dump import (
    INDEX_FIELDS,
    merge_rows,
    read_index,
    write_index,
    write_png,
)
from .map_store import CAMDump, MapStore, dump_files, load_cam, load_cams
from .thumbs import ThumbSheets, parse_thumb
from .writer import CAMWriter, SampleCAMs, WriterOptions, center_energy

__all__ = [
    'INDEX_FIELDS',
    'BackgroundWriter',
    'CAMDump',
    'CAMWriter',
    'MapStore',
    'SampleCAMs',
    'ThumbSheets',
    'WriterOptions',
    'center_energy',
    'dump_files',
    'load_cam',
    'load_cams',
    'merge_rows',
    'parse_thumb',
    'read_index',
    'write_index',
    'write_png',
]
