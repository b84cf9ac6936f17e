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
open with ``np.load(..., mmap_mode='r')``. :func:`load_cams` and
:class:`CAMDump` read them back.
"""

import os
import os.path as osp
from pathlib import Path
from typing import (
    IO,
    Any,
    Dict,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

import cv2
import numpy as np

from ..errors import InputError
from .cam_dump import read_index

__all__ = [
    'MapStore',
    'CAMDump',
    'load_cams',
    'load_cam',
    'dump_files',
    'RAW_DTYPES',
    'MAPS_DIR',
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

    def close(self) -> None:
        if self.file is None:
            return
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype, (self.rows, *self.hw)))
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


class CAMDump:
    """Read a dump folder: its index rows and the maps they point to.

    Args:
        folder (str | Path): A folder with ``index.json``/``index.csv``
            written by the hook or by ``tools/vis_cam.py --save-raw``.
    """

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        try:
            self.rows = [_typed(r) for r in read_index(self.folder)]
        except FileNotFoundError as err:
            raise InputError(
                f'{self.folder} is not a CAM dump folder: {err}'
            ) from None
        self._arrays: Dict[str, np.ndarray] = {}

    def select(
        self,
        dataset_index: Optional[int] = None,
        method: Optional[str] = None,
        target: Union[None, str, int] = None,
    ) -> List[Dict[str, Any]]:
        """Rows matching every given filter.

        Args:
            dataset_index (int, optional): The sample (dataset index in a
                hook dump, input number in a tool dump). Defaults to None.
            method (str, optional): Method name as in the rows
                (``'GradCAM'``); case and dashes are ignored. Defaults to None.
            target (str | int, optional): A target kind (``'pred'``,
                ``'gt'``, ``'top1'``...) or a class index. Defaults to None.

        Returns:
            list[dict]: The rows, in index order.
        """
        key = _method_key(method) if method is not None else None
        out = []
        for row in self.rows:
            if dataset_index is not None and row['dataset_index'] != int(
                dataset_index
            ):
                continue
            if key is not None and _method_key(row['method']) != key:
                continue
            if target is not None and not _target_matches(row, target):
                continue
            out.append(row)
        return out

    def load(self, row: Dict[str, Any]) -> np.ndarray:
        """The float32 map a row points to."""
        rel = row.get('raw_file') or ''
        if not rel:
            raise InputError(
                f'Row of sample {row["dataset_index"]} ({row["method"]}, '
                f'{row["target_kind"]}) has no raw map: the dump was '
                'written without save_raw (hook: output.save_raw=True; '
                'tool: --save-raw).'
            )
        if rel not in self._arrays:
            path = self.folder / rel
            if not path.is_file():
                raise InputError(f'Raw map file {path} is missing.')
            self._arrays[rel] = np.load(path, mmap_mode='r')
        return np.asarray(self._arrays[rel][int(row['raw_row'])], np.float32)

    def __iter__(self) -> Iterator[Tuple[Dict[str, Any], np.ndarray]]:
        for row in self.rows:
            if row.get('raw_file'):
                yield row, self.load(row)


def load_cams(
    folder: PathLike,
    dataset_index: Optional[int] = None,
    method: Optional[str] = None,
    target: Union[None, str, int] = None,
) -> List[Tuple[Dict[str, Any], np.ndarray]]:
    """Index rows of a dump with their maps, filtered.

    Example:
        >>> for row, cam in load_cams('work_dirs/x/cam/val_epoch_3',
        ...                           method='gradcam', target='pred'):
        ...     print(row['dataset_index'], cam.shape)

    Args:
        folder (str | Path): The dump folder.
        dataset_index (int, optional): Keep this sample only. Defaults to None.
        method (str, optional): Keep this method only. Defaults to None.
        target (str | int, optional): Keep this target kind or class only.
            Defaults to None.

    Returns:
        list[tuple[dict, np.ndarray]]: ``(row, float32 (H, W) map)`` pairs.
    """
    dump = CAMDump(folder)
    rows = dump.select(dataset_index, method, target)
    return [(row, dump.load(row)) for row in rows]


def load_cam(
    folder: PathLike,
    dataset_index: int,
    method: str = 'GradCAM',
    target: Union[str, int] = 'pred',
) -> np.ndarray:
    """One map of a dump: sample, method and target kind (or class).

    Args:
        folder (str | Path): The dump folder.
        dataset_index (int): The sample.
        method (str): The method. Defaults to ``'GradCAM'``.
        target (str | int): Target kind or class. Defaults to ``'pred'``.

    Returns:
        np.ndarray: The float32 ``(H, W)`` map.

    Raises:
        InputError: When no row or several rows match, naming what the
            dump holds.
    """
    dump = CAMDump(folder)
    rows = dump.select(dataset_index, method, target)
    if len(rows) != 1:
        have = sorted({(r['method'], r['target_kind']) for r in dump.rows})
        raise InputError(
            f'{len(rows)} maps in {folder} match sample {dataset_index}, '
            f'method {method!r}, target {target!r}; the dump holds '
            f'(method, target) {have}.'
        )
    return dump.load(rows[0])


def _method_key(name: str) -> str:
    return name.lower().replace('-', '').replace('_', '').replace(' ', '')


def _target_matches(row: Dict[str, Any], target: Union[str, int]) -> bool:
    if isinstance(target, str):
        return row['target_kind'] == target
    return row['target'] == int(target)


#: Columns read back as numbers / booleans from a CSV index.
_INT_FIELDS = ('dataset_index', 'gt', 'pred', 'target', 'raw_row', 'rank')
_FLOAT_FIELDS = ('score', 'target_score', 'center_energy')
_BOOL_FIELDS = ('misclassified', 'blank')


def _typed(row: Dict[str, Any]) -> Dict[str, Any]:
    """A row with its numeric columns typed (CSV gives strings)."""
    out = dict(row)
    for key in _INT_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = int(value) if value.strip() else None
    for key in _FLOAT_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = float(value) if value.strip() else None
    for key in _BOOL_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = value.strip().lower() in ('true', '1')
    return out


def dump_files(folder: PathLike) -> List[str]:
    """Every file under a dump folder, relative, sorted (for counts)."""
    root = str(folder)
    return sorted(
        osp.relpath(osp.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
    )
