"""The tables of a dump: final index, gallery and report, from its rows.

Written when a run ends (the hook's :class:`EvalDump`, the tool), and by
:func:`finish_dump` for a dump whose run was killed: it reads every
committed row of the streaming index shards, seals the store arrays (their
headers then say how many rows are complete), drops references to
thumbnail sheets that were never written, and writes ``index.json`` with
``partial: true`` and the ``missing`` samples, the gallery and the report.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import InputError
from ..fileio import CAMDump, parse_thumb, seal_array, write_index
from ..fileio.map_store import complete_rows
from .gallery import write_gallery
from .report import write_report

__all__ = ['write_tables', 'finish_dump', 'FinishedDump']

PathLike = Union[str, Path]


def write_tables(
    folder: Path,
    rows: Sequence[Dict[str, Any]],
    meta: Dict[str, Any],
    index_format: str = 'json',
    gallery: bool = True,
    report: bool = True,
) -> Path:
    """Write the final index, and the gallery and report of a dump.

    Args:
        folder (Path): The dump folder.
        rows (Sequence[dict]): Its rows, in the order to show them.
        meta (dict): Index meta (``classes`` names the classes).
        index_format (str): ``'json'`` or ``'csv'``. Defaults to ``'json'``.
        gallery (bool): Write ``index.html``. Defaults to True.
        report (bool): Write ``false_positives.*``. Defaults to True.

    Returns:
        Path: The index file.
    """
    folder = Path(folder)
    path = write_index(folder, rows, index_format, meta)
    title = f'CAMs: {folder.name}'
    classes = meta.get('classes')
    if gallery:
        write_gallery(folder, rows, classes, title)
    if report:
        write_report(folder, rows, classes, title)
    return path


@dataclass
class FinishedDump:
    """What :func:`finish_dump` did.

    Args:
        index (Path): The index written.
        samples (int): Samples in it.
        rows (int): Rows in it.
        missing (list[int]): Dataset indices expected but absent (empty
            when the dump did not record what it expected).
        expected (int, optional): Samples the run set out to explain,
            where recorded.
        torn (int): Rows dropped: their map was not complete on disk.
    """

    index: Path
    samples: int
    rows: int
    missing: List[int]
    expected: Optional[int]
    torn: int


def finish_dump(folder: PathLike, index_format: str = 'json') -> FinishedDump:
    """Build the index, gallery and report of a dump whose run stopped.

    Args:
        folder (str | Path): The dump folder (with ``index*.sqlite``).
        index_format (str): ``'json'`` or ``'csv'``. Defaults to ``'json'``.

    Returns:
        FinishedDump: Counts and the missing samples.

    Raises:
        InputError: No such folder, not a streaming dump, or already
            finished (its index is never overwritten).
    """
    folder = Path(folder)
    for name in ('index.json', 'index.csv'):
        if (folder / name).is_file():
            raise InputError(
                f'{folder / name} exists: this dump is finished already '
                '(its index is never overwritten).'
            )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dump = CAMDump(folder)
    _seal(folder, dump.rows)
    rows = [_existing_thumbs(folder, r) for r in dump.rows]
    rows.sort(
        key=lambda r: (
            not r['misclassified'],
            r['dataset_index'],
            r['target_kind'],
            r['method'],
        )
    )
    meta = dict(dump.meta, partial=True, missing=dump.missing)
    path = write_tables(folder, rows, meta, index_format)
    return FinishedDump(
        path,
        len({r['dataset_index'] for r in rows}),
        len(rows),
        dump.missing,
        dump.meta.get('expected'),
        dump.torn,
    )


def _seal(folder: Path, rows: Sequence[Dict[str, Any]]) -> None:
    """Headers of the store arrays the rows use: their complete rows."""
    files = {r.get('raw_file') for r in rows}
    files |= {r.get('desc_file') for r in rows}
    for rel in sorted(f for f in files if f):
        path = folder / rel
        seal_array(path, complete_rows(path))


def _existing_thumbs(folder: Path, row: Dict[str, Any]) -> Dict[str, Any]:
    """The row without references to sheets that were never written."""
    out = dict(row)
    for key in ('thumb', 'input_thumb'):
        ref = out.get(key) or ''
        if ref and not (folder / parse_thumb(ref)[0]).is_file():
            out[key] = ''
    return out
