"""Descriptors and model facts of a CAM dump, for pattern analysis.

:func:`load_descriptors` reads the evidence descriptors a dump keeps beside
its maps (``descriptors/{method}_{kind}{suffix}.npy``, float16
``(N, DESCRIPTOR_DIM)``, rows referenced by the index columns ``desc_file``
and ``desc_row``). It is the analysis module's own reader, with the
signature of ``mmcam_ext.fileio.load_descriptors``, which replaces it once
that reader exists.

:func:`dump_signature` collects what must agree between a dump whose
mistakes were grouped and a pool dump that is mined for look-alikes: the
method, the descriptor size, the number of classes and, where the dump
records them, its target layers and model fingerprint.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import InputError
from ..fileio import CAMDump
from ..utils.descriptors import DESCRIPTOR_DIM

__all__ = ['load_descriptors', 'dump_meta', 'dump_signature', 'NO_DESC']

PathLike = Union[str, Path]

#: How to get descriptors, for the error of a dump without them.
NO_DESC = (
    'Descriptors are written with the raw maps: hook '
    'output=dict(save_raw=True) (descriptors are on unless '
    'descriptors=False), tool: tools/vis_cam.py --save-raw. Re-run the '
    'evaluation or the tool with a version of mmcam_ext that writes them.'
)


def load_descriptors(
    folder: PathLike,
    method: Optional[str] = None,
    target: Union[None, str, int] = None,
) -> Tuple[List[Dict[str, Any]], np.ndarray]:
    """Index rows of a dump that have descriptors, and the descriptors.

    Every row of the index is read (all ranks of a DDP dump); rows are
    filtered as :meth:`mmcam_ext.fileio.CAMDump.select` filters them.

    Args:
        folder (str | Path): The dump folder.
        method (str, optional): Keep this method only. Defaults to None.
        target (str | int, optional): Keep this target kind or class only.
            Defaults to None.

    Returns:
        tuple[list[dict], np.ndarray]: The rows and float32
        ``(len(rows), DESCRIPTOR_DIM)`` descriptors, row ``i`` for
        ``rows[i]``.

    Raises:
        InputError: The folder is not a dump, or has no descriptors.
    """
    dump = _open_dump(folder)
    rows = [r for r in dump.select(None, method, target) if r.get('desc_file')]
    if not rows:
        what = f' for method {method!r}' if method is not None else ''
        what += f' and target {target!r}' if target is not None else ''
        raise InputError(f'{dump.folder} has no descriptors{what}. {NO_DESC}')
    desc = np.empty((len(rows), DESCRIPTOR_DIM), np.float32)
    files = np.array([r['desc_file'] for r in rows])
    at = np.array([int(r['desc_row']) for r in rows], np.int64)
    for rel in np.unique(files):
        arr = _open_desc(dump.folder / rel)
        where = np.flatnonzero(files == rel)
        desc[where] = arr[at[where]]
    return rows, desc


def _open_dump(folder: PathLike) -> CAMDump:
    """The dump, or an :class:`InputError` naming a missing folder."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f'Dump folder {path} does not exist.')
    return CAMDump(path)


def _open_desc(path: Path) -> np.ndarray:
    """A memory-mapped ``(N, DESCRIPTOR_DIM)`` descriptor array."""
    if not path.is_file():
        raise InputError(f'Descriptor file {path} is missing. {NO_DESC}')
    arr = np.load(path, mmap_mode='r')
    if arr.ndim != 2 or arr.shape[1] != DESCRIPTOR_DIM:
        raise InputError(
            f'{path} holds descriptors of shape {arr.shape}; this version '
            f'of mmcam_ext reads (N, {DESCRIPTOR_DIM}). {NO_DESC}'
        )
    return arr


def dump_meta(folder: PathLike) -> Dict[str, Any]:
    """The meta data of ``index.json`` (empty for a CSV index).

    Args:
        folder (str | Path): The dump folder.

    Returns:
        dict: Every key of ``index.json`` but ``rows``.
    """
    path = Path(folder) / 'index.json'
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    meta.pop('rows', None)
    return meta


def dump_signature(
    folder: PathLike, rows: List[Dict[str, Any]], method: str
) -> Dict[str, Any]:
    """What must agree between two dumps compared by descriptors.

    Args:
        folder (str | Path): The dump folder.
        rows (list[dict]): Its rows (any method).
        method (str): The method whose descriptors are compared.

    Returns:
        dict: ``method``, ``descriptor_dim``, ``num_classes`` (from the
        class names, else None), ``target_layers`` and ``model`` (a model
        fingerprint) when the dump records them, else None.
    """
    meta = dump_meta(folder)
    classes = meta.get('classes')
    layers = meta.get('target_layers')
    return dict(
        method=method,
        descriptor_dim=DESCRIPTOR_DIM,
        num_classes=len(classes) if classes else None,
        target_layers=list(layers) if layers else None,
        model=meta.get('model_fingerprint') or meta.get('model'),
    )
