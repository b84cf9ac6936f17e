"""On-disk formats of CAM dumps: the streaming index, the compact map
store, descriptors, thumbnail sheets, the output writers, the one writer the
hook and the tool share, and the reader."""

from .background import BackgroundWriter
from .cam_dump import (
    INDEX_FIELDS,
    merge_rows,
    read_index,
    write_index,
    write_png,
)
from .dump_reader import (
    CAMDump,
    PartialDumpWarning,
    load_cam,
    load_cams,
    load_descriptors,
    read_partial,
)
from .index_db import IndexDB, read_shard, shard_paths
from .map_store import MapStore, dump_files, seal_array
from .outputs import (
    BaseOutput,
    DescriptorOutput,
    ImageOutput,
    IndexOutput,
    MapStoreOutput,
    ThumbnailOutput,
    WriterOptions,
)
from .thumbs import ThumbSheets, parse_thumb
from .writer import CAMSample, CAMWriter, SampleCAMs, center_energy

__all__ = [
    'INDEX_FIELDS',
    'BackgroundWriter',
    'BaseOutput',
    'CAMDump',
    'CAMSample',
    'CAMWriter',
    'DescriptorOutput',
    'ImageOutput',
    'IndexDB',
    'IndexOutput',
    'MapStore',
    'MapStoreOutput',
    'PartialDumpWarning',
    'SampleCAMs',
    'ThumbSheets',
    'ThumbnailOutput',
    'WriterOptions',
    'center_energy',
    'dump_files',
    'load_cam',
    'load_cams',
    'load_descriptors',
    'merge_rows',
    'parse_thumb',
    'read_index',
    'read_partial',
    'read_shard',
    'seal_array',
    'shard_paths',
    'write_index',
    'write_png',
]
