"""Files of one CAM dump: images, raw maps and the index.

Kept apart from the hook so that the on-disk format (what a user or a
benchmark reads back) is defined in one place.
"""

import csv
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'INDEX_FIELDS',
    'write_png',
    'write_index',
    'merge_rows',
    'read_index',
]

# Columns of the index, in order. Paths are relative to the dump folder:
# ``file`` is the per-sample overlay PNG (empty when per-sample PNGs are
# off), ``raw_file`` + ``raw_row`` the map in the compact store
# (``mmcam_ext.fileio.map_store``), ``thumb`` / ``input_thumb`` a tile of a
# thumbnail sheet (``sheet.jpg#tile``). ``blank``: the map is zero
# everywhere after the ReLU; ``center_energy``: share of the map's mass in
# the central box (``mmcam_ext.fileio.writer.center_energy``);
# ``desc_file`` + ``desc_row``: the sample's evidence descriptor
# (``mmcam_ext.fileio.outputs.DescriptorOutput``).
INDEX_FIELDS = (
    'dataset_index',
    'img_path',
    'gt',
    'pred',
    'score',
    'misclassified',
    'target_kind',
    'target',
    'target_score',
    'method',
    'blank',
    'center_energy',
    'file',
    'raw_file',
    'raw_row',
    'input_file',
    'thumb',
    'input_thumb',
    'rank',
    'desc_file',
    'desc_row',
)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (cv2 wants BGR), failing loudly."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(
            f'Could not write {path}: check that the folder is '
            'writable and has space.'
        )


def merge_rows(
    parts: Iterable[Sequence[Dict[str, Any]]],
) -> List[Dict[str, Any]]:
    """Rows from all ranks, duplicates dropped, in a stable order.

    A sampler that pads its shards repeats samples on several ranks; the
    same (sample, target, method) is then kept once. Order: misclassified
    first (those are what one opens a dump for), then dataset index.
    """
    seen: Dict[Tuple[Any, Any, Any], Dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            key = (row['dataset_index'], row['target_kind'], row['method'])
            seen.setdefault(key, row)
    return sorted(
        seen.values(),
        key=lambda r: (
            not r['misclassified'],
            r['dataset_index'],
            r['target_kind'],
            r['method'],
        ),
    )


def write_index(
    folder: Path,
    rows: Sequence[Dict[str, Any]],
    fmt: str,
    meta: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write ``index.json`` (meta + rows) or ``index.csv`` (rows only).

    Args:
        folder (Path): The dump folder.
        rows (Sequence[dict]): One dict per (sample, target, method) with
            :data:`INDEX_FIELDS`.
        fmt (str): ``'json'`` or ``'csv'``.
        meta (dict, optional): Phase, step, methods, classes; JSON only.
            Defaults to None.

    Returns:
        Path: The index file written.

    Raises:
        ValueError: ``fmt`` is neither ``'json'`` nor ``'csv'``.
    """
    if fmt == 'json':
        path = folder / 'index.json'
        path.write_text(
            json.dumps({**(meta or {}), 'rows': list(rows)}, indent=1)
        )
    elif fmt == 'csv':
        path = folder / 'index.csv'
        with path.open('w', newline='') as f:
            writer = csv.DictWriter(
                f, fieldnames=INDEX_FIELDS, extrasaction='ignore'
            )
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ValueError(f"index format must be 'json' or 'csv', got {fmt!r}.")
    return path


def read_index(folder: Path) -> List[Dict[str, Any]]:
    """Rows of a dump folder's index (JSON or CSV), as written."""
    folder = Path(folder)
    if (folder / 'index.json').exists():
        return json.loads((folder / 'index.json').read_text())['rows']
    if (folder / 'index.csv').exists():
        with (folder / 'index.csv').open(newline='') as f:
            return list(csv.DictReader(f))
    raise FileNotFoundError(f'No index.json or index.csv in {folder}.')
