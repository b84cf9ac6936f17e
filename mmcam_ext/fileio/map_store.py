"""Compact raw-map store: a few arrays per dump, not one file per map.

A dump folder (one evaluation of the hook, one ``--save-raw`` run of
``tools/vis_cam.py``) keeps its maps in ``maps/``, one ``.npy`` array
``(N, H, W)`` per method, target kind and map size (and process under
DDP)::

    maps/GradCAM_pred_224x224.npy          # float16, N rows
    maps/GradCAM_gt_224x224.rank1.npy      # rank 1 of a 2-process run

Each index row points into it with ``raw_file`` (path relative to the dump
folder) and ``raw_row``. The arrays are appended to while the run goes
(a fixed-size ``.npy`` header is rewritten with the final row count when the
store closes), so memory stays flat however large the evaluation, and they
open with ``np.load(..., mmap_mode='r')``. A run killed before the store
closed leaves the header at zero rows and maybe a torn last row:
:func:`open_array` then maps the complete rows only (the index says which
rows were committed), and :func:`seal_array` writes the header of the
complete rows (``dump finish``). :mod:`mmcam_ext.fileio.dump_reader` reads
dumps back.
"""

import os
import os.path as osp
from pathlib import Path
from typing import (
    IO,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

import cv2
import numpy as np

from ..errors import InputError

__all__ = [
    'MapStore',
    'dump_files',
    'open_array',
    'complete_rows',
    'seal_array',
    'RAW_DTYPES',
    'MAPS_DIR',
    'HEADER_BYTES',
]

MAPS_DIR = 'maps'
RAW_DTYPES = ('float16', 'float32')
#: Bytes of the ``.npy`` header this store writes: fixed, so the row count
#: can be rewritten in place when the store closes.
HEADER_BYTES = 128
PathLike = Union[str, Path]


def _npy_header(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header padded to :data:`HEADER_BYTES`."""
    fields = {
        'descr': np.lib.format.dtype_to_descr(dtype),
        'fortran_order': False,
        'shape': shape,
    }
    text = repr(fields).encode('latin1')
    magic = np.lib.format.magic(1, 0)
    room = HEADER_BYTES - len(magic) - 2
    if len(text) + 1 > room:
        raise ValueError(f'shape {shape} too long for the store header')
    text = text + b' ' * (room - len(text) - 1) + b'\n'
    return magic + len(text).to_bytes(2, 'little') + text


class _Appender:
    """One growing ``(N, H, W)`` array file."""

    def __init__(self, path: Path, hw: Tuple[int, int], dtype: str) -> None:
        self.path, self.hw, self.dtype = path, hw, np.dtype(dtype)
        self.rows = 0
        self.file: Optional[IO[bytes]] = None

    def append(self, cam: np.ndarray) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, 'wb')
            self.file.write(_npy_header(self.dtype, (0, *self.hw)))
        data = np.ascontiguousarray(cam, dtype=self.dtype)
        assert data.shape == self.hw, (data.shape, self.hw)
        self.file.write(data.tobytes())
        self.rows += 1

    def flush(self) -> None:
        """Hand the rows written so far to the operating system."""
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is None:
            return
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype, (self.rows, *self.hw)))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None


class MapStore:
    """Writer of the raw maps of one dump folder (one process).

    :meth:`reserve` runs in the caller's thread and says where a map will
    be (file, row); :meth:`append` writes it, in the same order, typically
    from the background writer's thread. A file whose write failed is
    listed in :attr:`failed` and later maps for it are dropped (their rows
    would be wrong), so the index can blank those references.

    Args:
        folder (str | Path): The dump folder.
        dtype (str): ``'float16'`` (half the size; maps in ``[0, 1]`` keep
            about 3 decimals) or ``'float32'``. Defaults to ``'float16'``.
        downsample (int): Store maps ``downsample`` times smaller (area
            interpolation). Defaults to 1.
        suffix (str): Inserted before ``.npy`` (``'.rank1'`` under DDP).
            Defaults to ``''``.
    """

    def __init__(
        self,
        folder: PathLike,
        dtype: str = 'float16',
        downsample: int = 1,
        suffix: str = '',
    ) -> None:
        if dtype not in RAW_DTYPES:
            raise InputError(f'raw dtype must be one of {RAW_DTYPES}.')
        if downsample < 1:
            raise InputError(f'downsample must be >= 1, got {downsample}.')
        self.folder = Path(folder)
        self.dtype, self.downsample, self.suffix = dtype, downsample, suffix
        self._files: Dict[str, _Appender] = {}
        self._reserved: Dict[str, int] = {}
        self.failed: Set[str] = set()

    def stored_size(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """Size a ``hw`` map is stored at."""
        d = self.downsample
        return max(1, hw[0] // d), max(1, hw[1] // d)

    def reserve(
        self, method: str, kind: str, hw: Tuple[int, int]
    ) -> Tuple[str, int]:
        """File (relative to the dump folder) and row of the next map."""
        h, w = self.stored_size(hw)
        rel = f'{MAPS_DIR}/{method}_{kind}_{h}x{w}{self.suffix}.npy'
        row = self._reserved.get(rel, 0)
        self._reserved[rel] = row + 1
        if rel not in self._files:
            self._files[rel] = _Appender(self.folder / rel, (h, w), self.dtype)
        return rel, row

    def append(self, rel: str, cam: np.ndarray) -> None:
        """Write the next map of ``rel`` (in reservation order)."""
        if rel in self.failed:
            return
        appender = self._files[rel]
        try:
            appender.append(self._shrink(cam, appender.hw))
        except Exception:
            self.failed.add(rel)
            raise

    def put(
        self, method: str, kind: str, hw: Tuple[int, int], cam: np.ndarray
    ) -> Tuple[str, Optional[int]]:
        """Reserve and write one map at once (one thread).

        Returns:
            tuple[str, int | None]: File and row, or ``('', None)`` when
            the file failed (now or before): nothing points at a wrong
            row.
        """
        rel, row = self.reserve(method, kind, hw)
        if rel in self.failed:
            return '', None
        self.append(rel, cam)
        return rel, row

    def flush(self) -> None:
        """Hand every array's rows so far to the operating system."""
        for appender in self._files.values():
            appender.flush()

    def _shrink(self, cam: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
        cam = np.asarray(cam, np.float32)
        if cam.shape != hw:
            cam = cv2.resize(cam, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        if self.dtype == 'float16':
            info = np.finfo(np.float16)
            cam = np.clip(cam, info.min, info.max)
        return cam

    def close(self) -> List[str]:
        """Write the final headers; the files written (relative).

        A file that did not receive every reserved map joins
        :attr:`failed` (its rows would be wrong).
        """
        done = []
        for rel, appender in self._files.items():
            try:
                appender.close()
            finally:
                if appender.rows != self._reserved[rel]:
                    self.failed.add(rel)
            if appender.rows and rel not in self.failed:
                done.append(rel)
        return done


def dump_files(folder: PathLike) -> List[str]:
    """Every file under a dump folder, relative, sorted (for counts)."""
    root = str(folder)
    return sorted(
        osp.relpath(osp.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
    )


def _read_header(path: Path) -> Tuple[np.dtype, Tuple[int, ...], int]:
    """dtype, shape and data offset of a ``.npy`` file."""
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        return dtype, shape, f.tell()


def complete_rows(path: PathLike) -> int:
    """Rows of a store array whose bytes are all on disk.

    The header's row count once the store closed; before that (a killed
    run) what the file size holds, a torn last row not counted.
    """
    dtype, shape, offset = _read_header(Path(path))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    on_disk = (os.path.getsize(path) - offset) // max(row_bytes, 1)
    return int(min(shape[0], on_disk) if shape[0] else on_disk)


def open_array(path: PathLike) -> np.ndarray:
    """A store array memory-mapped, read-only: its complete rows only."""
    dtype, shape, offset = _read_header(Path(path))
    rows = complete_rows(path)
    if rows == 0:
        return np.empty((0, *shape[1:]), dtype)
    return np.memmap(path, dtype, 'r', offset=offset, shape=(rows, *shape[1:]))


def seal_array(path: PathLike, rows: int) -> None:
    """Rewrite a store array's header to ``rows`` rows (after a kill).

    The bytes past them (a torn tail, rows never committed) stay but are
    not part of the array; ``np.load`` then reads it as usual.
    """
    dtype, shape, offset = _read_header(Path(path))
    if offset != HEADER_BYTES:
        raise InputError(f'{path} was not written by the map store.')
    with open(path, 'r+b') as f:
        f.write(_npy_header(dtype, (rows, *shape[1:])))
