"""Read a dump folder back: its rows, maps and descriptors, also partial.

A finished dump has ``index.json`` (or ``index.csv``). A dump whose run was
killed has only the streaming index shards (``index*.sqlite``, one per
process, :mod:`mmcam_ext.fileio.index_db`): :class:`CAMDump` then reads
every committed row of every shard, sets :attr:`CAMDump.partial`, lists the
samples the run set out to explain but did not (:attr:`CAMDump.missing`,
where known) and warns with a :class:`PartialDumpWarning` (never silence).
A row whose map or descriptor is not complete on disk (a torn tail) is
never returned; :attr:`CAMDump.torn` counts such rows.
``python -m mmcam_ext dump finish DUMP_DIR`` turns a partial dump into a
finished one.
"""

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import InputError, MMCamWarning
from .cam_dump import merge_rows, read_index
from .index_db import read_shard, shard_paths
from .map_store import complete_rows, open_array

__all__ = [
    'CAMDump',
    'PartialDumpWarning',
    'load_cams',
    'load_cam',
    'load_descriptors',
    'read_partial',
    'NO_DESC',
]

PathLike = Union[str, Path]

#: How to get descriptors, for the error of a dump without them.
NO_DESC = (
    'Descriptors are written with the raw maps: hook '
    'output=dict(save_raw=True) (descriptors are on unless '
    'descriptors=False), tool: tools/vis_cam.py --save-raw. Re-run the '
    'evaluation or the tool with a version of mmcam_ext that writes them.'
)


class PartialDumpWarning(MMCamWarning):
    """A dump is read whose run did not finish (or was finished after a
    kill): some samples are missing."""


def read_partial(
    folder: PathLike, rank: Optional[int] = None
) -> Tuple[Dict[str, Any], List[Dict[str, Any]], List[int]]:
    """Meta, committed rows and missing samples from the index shards.

    Args:
        folder (str | Path): The dump folder.
        rank (int, optional): Read only this process's shard. Defaults to
            None (every shard).

    Returns:
        tuple: ``(meta, rows, missing)``: the meta of the first shard
        (plus ``expected``: how many samples were expected, or None),
        rows merged over shards (duplicates of a padded sampler dropped)
        and the sorted dataset indices expected but absent.

    Raises:
        FileNotFoundError: No shard (of that rank).
    """
    paths = shard_paths(folder)
    if rank is not None:
        names = {f'index.rank{rank}.sqlite'}
        names |= {'index.sqlite'} if rank == 0 else set()
        paths = [p for p in paths if p.name in names]
    if not paths:
        raise FileNotFoundError(
            f'No index.json, index.csv or index*.sqlite in {folder}.'
        )
    parts = [read_shard(p) for p in paths]
    meta = dict(parts[0][0])
    rows = merge_rows(p[1] for p in parts)
    expected: Dict[int, str] = {}
    for part in parts:
        expected.update(part[2])
    done = {r['dataset_index'] for r in rows}
    missing = sorted(set(expected) - done)
    meta['expected'] = len(expected) if expected else None
    return meta, rows, missing


class CAMDump:
    """Read a dump folder: its index rows and the maps they point to.

    Args:
        folder (str | Path): A folder written by the hook or by
            ``tools/vis_cam.py --save-raw``, finished or not.
        rank (int, optional): Of a partial DDP dump, read only this
            process's shard. Defaults to None (all).

    Attributes:
        rows (list[dict]): Rows whose files are complete.
        meta (dict): Phase, methods, classes, target layers, model
            fingerprint... (empty for a CSV index).
        partial (bool): The run did not finish (or was finished after a
            kill): some samples may be missing.
        missing (list[int]): Dataset indices the run set out to explain
            but did not, where known.
        torn (int): Rows dropped because their map or descriptor was not
            complete on disk.
    """

    def __init__(self, folder: PathLike, rank: Optional[int] = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(
                f'{self.folder} is not a CAM dump folder: it does not exist.'
            )
        self.missing: List[int] = []
        try:
            if rank is None and _has_final_index(self.folder):
                rows = read_index(self.folder)
                self.meta = _json_meta(self.folder)
                self.partial = bool(self.meta.get('partial'))
                self.missing = list(self.meta.get('missing') or [])
            else:
                self.meta, rows, self.missing = read_partial(self.folder, rank)
                self.partial = True
        except FileNotFoundError as err:
            raise InputError(
                f'{self.folder} is not a CAM dump folder: {err}'
            ) from None
        self._arrays: Dict[str, np.ndarray] = {}
        self._sizes: Dict[str, int] = {}
        typed = [_typed(r) for r in rows]
        self.rows = [r for r in typed if self._complete(r)]
        self.torn = len(typed) - len(self.rows)
        if self.partial or self.torn:
            warnings.warn(
                self._partial_message(), PartialDumpWarning, stacklevel=2
            )

    def _partial_message(self) -> str:
        samples = len({r['dataset_index'] for r in self.rows})
        text = f'{self.folder} is a partial dump: {samples} sample(s) read'
        if self.missing:
            text += f', {len(self.missing)} expected sample(s) missing'
        if self.torn:
            text += f', {self.torn} row(s) with a torn map dropped'
        if _has_final_index(self.folder):
            return text + ' (finished after the run stopped).'
        return (
            text + '. The run did not finish; write its index, gallery and '
            f'report with: python -m mmcam_ext dump finish {self.folder}'
        )

    def _complete(self, row: Dict[str, Any]) -> bool:
        """Whether every file part the row points to is on disk."""
        for file_key, row_key in (
            ('raw_file', 'raw_row'),
            ('desc_file', 'desc_row'),
        ):
            rel = row.get(file_key) or ''
            if not rel:
                continue
            if rel not in self._sizes:
                path = self.folder / rel
                self._sizes[rel] = complete_rows(path) if path.is_file() else 0
            if int(row[row_key]) >= self._sizes[rel]:
                return False
        return True

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

    def array(self, rel: str) -> np.ndarray:
        """A store array (maps or descriptors), memory-mapped: its complete
        rows only."""
        if rel not in self._arrays:
            path = self.folder / rel
            if not path.is_file():
                raise InputError(f'Dump file {path} is missing.')
            self._arrays[rel] = open_array(path)
        return self._arrays[rel]

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
        return np.asarray(self.array(rel)[int(row['raw_row'])], np.float32)

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

    A partial dump (a killed run) gives every complete row and warns with
    a :class:`PartialDumpWarning`.

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


def load_descriptors(
    folder: PathLike,
    method: Optional[str] = None,
    target: Union[None, str, int] = None,
) -> Tuple[List[Dict[str, Any]], np.ndarray]:
    """Index rows of a dump that have descriptors, and the descriptors.

    Every row of the index is read (all ranks of a DDP dump); rows are
    filtered as :meth:`CAMDump.select` filters them.

    Args:
        folder (str | Path): The dump folder.
        method (str, optional): Keep this method only. Defaults to None.
        target (str | int, optional): Keep this target kind or class only.
            Defaults to None.

    Returns:
        tuple[list[dict], np.ndarray]: The rows and float32
        ``(len(rows), D)`` descriptors, row ``i`` for ``rows[i]``.

    Raises:
        InputError: The folder is not a dump, or has no descriptors.
    """
    dump = CAMDump(folder)
    rows = [r for r in dump.select(None, method, target) if r.get('desc_file')]
    if not rows:
        what = f' for method {method!r}' if method is not None else ''
        what += f' and target {target!r}' if target is not None else ''
        raise InputError(f'{dump.folder} has no descriptors{what}. {NO_DESC}')
    files = np.array([r['desc_file'] for r in rows])
    at = np.array([int(r['desc_row']) for r in rows], np.int64)
    dims = {dump.array(rel).shape[1:] for rel in np.unique(files)}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise InputError(
            f'{dump.folder} holds descriptors of shapes {sorted(dims)}; '
            f'expected one (N, D) size. {NO_DESC}'
        )
    desc = np.empty((len(rows), next(iter(dims))[0]), np.float32)
    for rel in np.unique(files):
        where = np.flatnonzero(files == rel)
        desc[where] = dump.array(rel)[at[where]]
    return rows, desc


def _has_final_index(folder: Path) -> bool:
    return (folder / 'index.json').is_file() or (
        folder / 'index.csv'
    ).is_file()


def _json_meta(folder: Path) -> Dict[str, Any]:
    path = folder / 'index.json'
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    meta.pop('rows', None)
    return meta


def _method_key(name: str) -> str:
    return name.lower().replace('-', '').replace('_', '').replace(' ', '')


def _target_matches(row: Dict[str, Any], target: Union[str, int]) -> bool:
    if isinstance(target, str):
        return row['target_kind'] == target
    return row['target'] == int(target)


#: Columns read back as numbers / booleans from a CSV index.
_INT_FIELDS = (
    'dataset_index',
    'gt',
    'pred',
    'target',
    'raw_row',
    'rank',
    'desc_row',
)
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
