"""Descriptors and model facts of a CAM dump, for pattern analysis.

:func:`load_descriptors` (re-exported from :mod:`mmcam_ext.fileio`) reads
the evidence descriptors a dump keeps beside its maps
(``descriptors/{method}_{kind}{suffix}.npy``, float16
``(N, DESCRIPTOR_DIM)``, rows referenced by the index columns ``desc_file``
and ``desc_row``).

:func:`dump_signature` collects what must agree between a dump whose
mistakes were grouped and a pool dump that is mined for look-alikes: the
method, the descriptor size, the number of classes and, where the dump
records them, its target layers and model fingerprint.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Union

from ..fileio import load_descriptors, read_partial, shard_paths
from ..fileio.dump_reader import NO_DESC
from ..utils.descriptors import DESCRIPTOR_DIM

__all__ = ['load_descriptors', 'dump_meta', 'dump_signature', 'NO_DESC']

PathLike = Union[str, Path]


def dump_meta(folder: PathLike) -> Dict[str, Any]:
    """The meta data of ``index.json`` (empty for a CSV index).

    Args:
        folder (str | Path): The dump folder.

    Returns:
        dict: Every key of ``index.json`` but ``rows`` (of a partial dump,
        the meta its streaming index holds).
    """
    path = Path(folder) / 'index.json'
    if not path.is_file():
        # a partial dump (killed run): the streaming index's meta
        return read_partial(folder)[0] if shard_paths(folder) else {}
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
