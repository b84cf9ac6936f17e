"""Output writers of a CAM dump, registered in ``OUTPUT_WRITERS``.

Each kind of file a dump holds is one small class with one interface
(:class:`BaseOutput`): :meth:`~BaseOutput.open` once, :meth:`~BaseOutput.add`
per sample (write the sample's files, fill this writer's index columns),
:meth:`~BaseOutput.commit` after each sample (hand what was written to the
operating system), :meth:`~BaseOutput.close` at the end. The
:class:`~mmcam_ext.fileio.CAMWriter` builds the configured ones from dicts
(:meth:`WriterOptions.output_cfgs`) and loops over them in its background
thread, the index last, so that a committed index row only ever points at
files already written.

Built in:

* :class:`MapStoreOutput` (``save_raw``): maps in the compact store.
* :class:`DescriptorOutput` (``save_raw`` and ``descriptors``): evidence
  descriptors, ``descriptors/{method}_{kind}{suffix}.npy`` float16
  ``(N, DESCRIPTOR_DIM)``.
* :class:`ThumbnailOutput` (``thumbnails``): tiles of sprite sheets.
* :class:`ImageOutput` (``save_images``): per-sample PNGs.
* :class:`IndexOutput` (always): the streaming SQLite index
  (:mod:`mmcam_ext.fileio.index_db`).

``docs/outputs.md`` shows how to add one.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

import cv2
import numpy as np

from ..registry import OUTPUT_WRITERS
from ..structures import CAMSample
from .cam_dump import write_png
from .index_db import IndexDB, db_name
from .map_store import RAW_DTYPES, MapStore, _Appender
from .thumbs import TILE_SIZE, ThumbSheets

__all__ = [
    'WriterOptions',
    'BaseOutput',
    'MapStoreOutput',
    'DescriptorOutput',
    'ThumbnailOutput',
    'ImageOutput',
    'IndexOutput',
    'row_map',
    'DESC_DIR',
]

Overlay = Callable[[np.ndarray, np.ndarray], np.ndarray]
Row = Dict[str, Any]
DESC_DIR = 'descriptors'
_F16 = np.finfo(np.float16)


@dataclass(frozen=True)
class WriterOptions:
    """What a :class:`~mmcam_ext.fileio.CAMWriter` writes; checked here
    for the hook and the tool alike.

    Args:
        save_images (bool): Per-sample PNGs: the input and one overlay per
            target and method. Defaults to True.
        save_raw (bool): Raw maps into the compact store. Defaults to
            False.
        raw_dtype (str): ``'float16'`` or ``'float32'``. Defaults to
            ``'float16'``.
        raw_downsample (int): Store maps this many times smaller.
            Defaults to 1.
        thumbnails (bool): Thumbnail sheets for the gallery. Defaults to
            True.
        descriptors (bool): Evidence descriptors beside the raw maps
            (only with ``save_raw``, and only for samples that carry
            them). Defaults to True.
        signed (bool): Write the signed maps (before the ReLU, the
            samples' ``raw_maps``), stored as float32 whatever ``raw_dtype``
            says (signed values can be too small for float16). Defaults to
            False.
        suffix (str): File suffix of this process (``'.rank1'``).
            Defaults to ``''``.
        max_pending (int): Queued jobs at most (``0``: write in the
            caller's thread). Defaults to 64.
        index (bool): The streaming index (``index{suffix}.sqlite``):
            off only for a writer used for grids alone. Defaults to True.
        outputs (Sequence[dict]): More output writers, as
            ``OUTPUT_WRITERS`` config dicts (``dict(type='MyOutput')``).
            Defaults to ``()``.
    """

    save_images: bool = True
    save_raw: bool = False
    raw_dtype: str = 'float16'
    raw_downsample: int = 1
    thumbnails: bool = True
    descriptors: bool = True
    signed: bool = False
    suffix: str = ''
    max_pending: int = 64
    index: bool = True
    outputs: Sequence[Dict[str, Any]] = ()

    def __post_init__(self) -> None:
        if self.raw_dtype not in RAW_DTYPES:
            raise ValueError(
                f'raw_dtype must be one of {RAW_DTYPES}, '
                f'got {self.raw_dtype!r}.'
            )
        for name, least in (('raw_downsample', 1), ('max_pending', 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f'{name} must be an int, got {value!r}.')
            if value < least:
                raise ValueError(f'{name} must be >= {least}, got {value}.')
        for cfg in self.outputs:
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(
                    'outputs must be config dicts with a type, e.g. '
                    f"dict(type='MyOutput'); got {cfg!r}."
                )
            if cfg['type'] not in OUTPUT_WRITERS:
                raise ValueError(
                    f'Unknown output writer {cfg["type"]!r}; registered: '
                    f'{sorted(OUTPUT_WRITERS.module_dict)}.'
                )

    @property
    def store_dtype(self) -> str:
        """The dtype of stored maps: float32 for signed maps."""
        return 'float32' if self.signed else self.raw_dtype

    def output_cfgs(self) -> List[Dict[str, Any]]:
        """Config dicts of every output writer, the index last."""
        cfgs: List[Dict[str, Any]] = []
        if self.save_raw:
            cfgs.append(dict(type='MapStoreOutput'))
            if self.descriptors:
                cfgs.append(dict(type='DescriptorOutput'))
        if self.thumbnails:
            cfgs.append(dict(type='ThumbnailOutput'))
        if self.save_images:
            cfgs.append(dict(type='ImageOutput'))
        cfgs += [dict(c) for c in self.outputs]
        if self.index:
            cfgs.append(dict(type='IndexOutput'))
        return cfgs


def row_map(sample: CAMSample, row: Row, signed: bool = False) -> np.ndarray:
    """The float32 map of one row of ``sample``, cropped to its image
    (``signed``: the map before the ReLU, as :class:`WriterOptions` says).
    """
    k = list(sample.kinds).index(row['target_kind'])
    h, w = sample.image.shape[:2]
    cam = sample.cams(signed)[row['method']][k]
    return np.asarray(cam, np.float32)[:h, :w]


class BaseOutput:
    """One kind of file of a dump folder (one process).

    Subclasses override :meth:`add` and, where they need to, the others.
    All methods run in the writer's thread, in sample order.

    Args:
        folder (Path): The dump folder.
        options (WriterOptions): What the writer writes.
        overlay (Callable, optional): ``(rgb image, map) -> rgb overlay``.
            Defaults to None.
    """

    def __init__(
        self,
        folder: Path,
        options: WriterOptions,
        overlay: Optional[Overlay] = None,
    ) -> None:
        self.folder = Path(folder)
        self.options = options
        self.overlay = overlay

    def open(self) -> None:
        """Called once, before the first sample."""

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        """Write one sample's files; set this writer's columns in ``rows``
        (one per target kind x method, sample order).

        Raises:
            Exception: Any error; the writer reports it and goes on (the
                rows then keep this writer's columns empty).
        """
        raise NotImplementedError

    def commit(self) -> None:
        """Hand what :meth:`add` wrote to the operating system; the index
        commits the sample's rows after every writer's commit."""

    def close(self) -> List[str]:
        """Finish the files; the files written (relative)."""
        return []


@OUTPUT_WRITERS.register_module()
class MapStoreOutput(BaseOutput):
    """Raw maps into the compact store (``maps/``, columns ``raw_file``,
    ``raw_row``)."""

    def open(self) -> None:
        opts = self.options
        self.store = MapStore(
            self.folder, opts.store_dtype, opts.raw_downsample, opts.suffix
        )

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        hw = sample.image.shape[:2]
        for row in rows:
            rel, at = self.store.put(
                row['method'],
                row['target_kind'],
                hw,
                row_map(sample, row, self.options.signed),
            )
            row['raw_file'], row['raw_row'] = rel, at

    def commit(self) -> None:
        self.store.flush()

    def close(self) -> List[str]:
        return self.store.close()


@OUTPUT_WRITERS.register_module()
class DescriptorOutput(BaseOutput):
    """Evidence descriptors beside the maps: one float16 ``(N, D)`` array
    per method x target kind, ``descriptors/{method}_{kind}{suffix}.npy``
    (columns ``desc_file``, ``desc_row``; read them with
    :func:`mmcam_ext.fileio.load_descriptors`). Samples without
    descriptors leave the columns empty."""

    def open(self) -> None:
        self.files: Dict[str, _Appender] = {}
        self.failed: Set[str] = set()

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        for row in rows:
            desc = sample.descriptors.get(row['method'])
            if desc is None:
                continue
            k = list(sample.kinds).index(row['target_kind'])
            vec = np.asarray(desc[k], np.float32)
            rel = (
                f'{DESC_DIR}/{row["method"]}_{row["target_kind"]}'
                f'{self.options.suffix}.npy'
            )
            if rel in self.failed:
                continue
            if rel not in self.files:
                self.files[rel] = _Appender(
                    self.folder / rel, vec.shape, 'float16'
                )
            appender = self.files[rel]
            try:
                appender.append(np.clip(vec, _F16.min, _F16.max))
            except Exception:
                self.failed.add(rel)
                raise
            row['desc_file'], row['desc_row'] = rel, appender.rows - 1

    def commit(self) -> None:
        for appender in self.files.values():
            appender.flush()

    def close(self) -> List[str]:
        for appender in self.files.values():
            appender.close()
        return sorted(self.files)


@OUTPUT_WRITERS.register_module()
class ThumbnailOutput(BaseOutput):
    """Thumbnail tiles for the gallery (columns ``thumb``,
    ``input_thumb``). A sheet is written when full and at close: after a
    kill the last sheets are missing and ``dump finish`` drops the
    references to them."""

    def open(self) -> None:
        self.sheets = ThumbSheets(self.folder, suffix=self.options.suffix)

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        image = sample.image
        ref = self.sheets.reserve('input')
        self.sheets.put(ref, image)
        small = _shrink(image, TILE_SIZE)
        for row in rows:
            row['input_thumb'] = ref
            if self.overlay is None:
                continue
            cam = row_map(sample, row, self.options.signed)
            tile = self.overlay(small, _resize_map(cam, small.shape[:2]))
            row['thumb'] = self.sheets.reserve(
                f'{row["method"]}_{row["target_kind"]}'
            )
            self.sheets.put(row['thumb'], tile)

    def close(self) -> List[str]:
        return self.sheets.close()


@OUTPUT_WRITERS.register_module()
class ImageOutput(BaseOutput):
    """Per-sample PNGs: the input and one overlay per target and method
    (columns ``input_file``, ``file``)."""

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f'{sample.stem}_input.png'
        write_png(self.folder / name, sample.image)
        for row in rows:
            row['input_file'] = name
            if self.overlay is None:
                continue
            file = (
                f'{sample.stem}_{row["target_kind"]}{row["target"]}_'
                f'{row["method"]}.png'
            )
            write_png(
                self.folder / file,
                self.overlay(
                    sample.image, row_map(sample, row, self.options.signed)
                ),
            )
            row['file'] = file


@OUTPUT_WRITERS.register_module()
class IndexOutput(BaseOutput):
    """The streaming index: rows into ``index{suffix}.sqlite``, committed
    after every other writer's :meth:`commit` (see
    :mod:`mmcam_ext.fileio.index_db`)."""

    def open(self) -> None:
        self.db = IndexDB(self.folder / db_name(self.options.suffix))

    def add(self, sample: CAMSample, rows: List[Row]) -> None:
        self.db.add(rows)

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> List[str]:
        self.db.close()
        return [self.db.path.name]


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """The image with its long side at most ``side`` (for thumbnails)."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _resize_map(cam: np.ndarray, hw) -> np.ndarray:
    if cam.shape == tuple(hw):
        return cam
    return cv2.resize(cam, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
