"""Error patterns of one dump: the mistakes of a class, grouped.

:func:`discover_patterns` reads a dump's descriptors, picks the mistakes
asked for (false positives of a predicted class by default), groups each
class's mistakes with :func:`~.clustering.cluster_patterns` and describes
every pattern: size, share, mean wrong score, where the evidence lies, its
most typical samples and the correctly rejected samples that look the same
to the model. The result is a JSON-ready dict (``patterns.json``).
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.logging import print_log

from ..errors import InputError
from ..utils.descriptors import LAYOUT_SIDE, split_descriptors
from .clustering import cluster_patterns, pattern_features
from .dump_descriptors import dump_meta, dump_signature, load_descriptors

__all__ = ['PatternOptions', 'ERROR_KINDS', 'discover_patterns', 'Evidence']

ERROR_KINDS = ('fp', 'fn', 'all')
PathLike = Union[str, Path]


@dataclass
class PatternOptions:
    """What :func:`discover_patterns` groups, and how.

    Args:
        classes (Sequence[int | str], optional): Classes (index or name)
            whose mistakes are grouped. Defaults to None (every class with
            mistakes).
        errors (str): ``'fp'`` (predicted the class, ground truth another),
            ``'fn'`` (ground truth the class, predicted another) or
            ``'all'`` (both). Defaults to ``'fp'``.
        method (str, optional): The CAM method whose descriptors are used.
            Defaults to None (the first the dump has, by name).
        max_patterns (int): Most patterns per class. Defaults to 8.
        min_size (int): Smaller groups are folded into "other".
            Defaults to 3.
        seed (int): Seed of the clustering. Defaults to 0.
        layout_weight (float): Weight of where the evidence lies next to
            what it is. Defaults to 0.0.
        shown (int): Typical samples and look-alikes kept per pattern.
            Defaults to 8.
    """

    classes: Optional[Sequence[Union[int, str]]] = None
    errors: str = 'fp'
    method: Optional[str] = None
    max_patterns: int = 8
    min_size: int = 3
    seed: int = 0
    layout_weight: float = 0.0
    shown: int = 8

    def __post_init__(self) -> None:
        if self.errors not in ERROR_KINDS:
            raise InputError(
                f'errors must be one of {ERROR_KINDS}, got {self.errors!r}.'
            )
        for name in ('max_patterns', 'min_size', 'shown'):
            if getattr(self, name) < 1:
                raise InputError(f'{name} must be >= 1.')
        if self.max_patterns < 2:
            raise InputError('max_patterns must be >= 2.')


@dataclass
class Evidence:
    """The rows of one method with descriptors, one per sample.

    Args:
        rows (list[dict]): Rows whose map explains the predicted class.
        desc (np.ndarray): Their descriptors ``(n, DESCRIPTOR_DIM)``.
        feats (np.ndarray): Their clustering features.
        all_rows (list[dict]): Every row of the method with descriptors.
        all_desc (np.ndarray): Their descriptors.
    """

    rows: List[Dict[str, Any]]
    desc: np.ndarray
    feats: np.ndarray
    all_rows: List[Dict[str, Any]]
    all_desc: np.ndarray


def discover_patterns(
    folder: PathLike, options: Optional[PatternOptions] = None
) -> Dict[str, Any]:
    """Group a dump's mistakes into patterns.

    Args:
        folder (str | Path): A dump folder with descriptors.
        options (PatternOptions, optional): What to group and how.
            Defaults to None (``PatternOptions()``).

    Returns:
        dict: ``patterns`` (ranked per class, ids unique), ``classes``
        (per class analysed: counts, pattern ids, "other", or why it was
        skipped), ``signature`` (for mining), ``features`` and ``options``.

    Raises:
        InputError: No descriptors, no ground truth, no map of the
            predicted class, or an unknown class.
    """
    opts = options or PatternOptions()
    names = dump_meta(folder).get('classes')
    ev, method = _evidence(folder, opts)
    classes = _classes(ev.rows, opts, names)
    patterns: List[Dict[str, Any]] = []
    analysed = []
    for cls in classes:
        entry, found = _class_patterns(ev, cls, opts, names)
        for pat in found:
            pat['id'] = len(patterns)
            patterns.append(pat)
        entry['patterns'] = [p['id'] for p in found]
        analysed.append(entry)
    return dict(
        dump=str(Path(folder).resolve()),
        signature=dump_signature(folder, ev.all_rows, method),
        features=dict(layout_weight=opts.layout_weight, space='unit'),
        options=asdict(opts),
        classes=analysed,
        patterns=patterns,
    )


def _evidence(folder: PathLike, opts: PatternOptions):
    """One row per sample: its map of the predicted class."""
    all_rows, all_desc = load_descriptors(folder)
    methods = sorted({r['method'] for r in all_rows})
    method = opts.method if opts.method is not None else methods[0]
    if opts.method is None and len(methods) > 1:
        print_log(
            f'[mmcam_ext] patterns: the dump has descriptors of {methods}; '
            f'using {method} (choose with method=...).',
            logger='current',
        )
    all_rows, all_desc = load_descriptors(folder, method=method)
    method = all_rows[0]['method']
    if all(r.get('gt') is None for r in all_rows):
        raise InputError(
            f'{folder} has no ground truth (a tools/vis_cam.py dump): '
            'mistakes need labels. Use the dump of CAMVisualizationHook '
            "from a validation or test run (MMPretrain's tools/test.py)."
        )
    seen, keep = set(), []
    for i, r in enumerate(all_rows):
        if r.get('target') == r.get('pred') and r['dataset_index'] not in seen:
            seen.add(r['dataset_index'])
            keep.append(i)
    if not keep:
        raise InputError(
            f'{folder} has no {method} maps of the predicted class; the '
            "hook writes them with target='pred' or 'both'."
        )
    desc = all_desc[keep]
    feats = pattern_features(desc, opts.layout_weight)
    return (
        Evidence([all_rows[i] for i in keep], desc, feats, all_rows, all_desc),
        method,
    )


def _classes(
    rows: List[Dict[str, Any]],
    opts: PatternOptions,
    names: Optional[Sequence[str]],
) -> List[int]:
    """Class indices to analyse: given, or those with mistakes."""
    if opts.classes:
        return [_class_index(c, names) for c in opts.classes]
    wrong = [r for r in rows if r['misclassified']]
    found = set()
    if opts.errors in ('fp', 'all'):
        found |= {int(r['pred']) for r in wrong}
    if opts.errors in ('fn', 'all'):
        found |= {int(r['gt']) for r in wrong}
    return sorted(found)


def _class_index(cls: Union[int, str], names: Optional[Sequence[str]]) -> int:
    """A class given by index or name, as an index."""
    if isinstance(cls, int) or str(cls).lstrip('-').isdigit():
        index = int(cls)
        if index < 0 or (names and index >= len(names)):
            raise InputError(f'Class index {index} is out of range.')
        return index
    if names and cls in names:
        return list(names).index(cls)
    raise InputError(
        f'Unknown class {cls!r}: '
        + (
            f'the dump has classes {list(names)[:10]}...'
            if names
            else 'the dump has no class names; give indices.'
        )
    )


def _mistake_mask(rows: List[Dict[str, Any]], cls: int, errors: str):
    """Boolean mask of the rows that are mistakes about ``cls``."""
    gt = np.array([-1 if r['gt'] is None else int(r['gt']) for r in rows])
    pred = np.array([int(r['pred']) for r in rows])
    fp = (pred == cls) & (gt != cls) & (gt >= 0)
    fn = (gt == cls) & (pred != cls)
    return {'fp': fp, 'fn': fn, 'all': fp | fn}[errors]


def _class_patterns(ev: Evidence, cls: int, opts: PatternOptions, names):
    """The patterns of one class, ranked; and its summary entry."""
    mask = _mistake_mask(ev.rows, cls, opts.errors)
    idx = np.flatnonzero(mask)
    entry: Dict[str, Any] = dict(
        cls=cls,
        name=names[cls] if names and cls < len(names) else str(cls),
        errors=opts.errors,
        mistakes=int(len(idx)),
    )
    need = max(3, 2 * opts.min_size)
    if len(idx) < need:
        entry['skipped'] = (
            f'{len(idx)} {opts.errors} mistakes: too few to group (needs '
            f'at least {need}; lower min_size to group fewer).'
        )
        print_log(f'[mmcam_ext] class {entry["name"]}: {entry["skipped"]}')
        return entry, []
    labels, k = cluster_patterns(
        ev.feats[idx], opts.max_patterns, opts.min_size, opts.seed
    )
    found = [
        _describe(ev, idx[labels == lab], cls, opts, entry)
        for lab in range(labels.max() + 1)
    ]
    found.sort(key=lambda p: -p['rank_score'])
    for rank, pat in enumerate(found):
        pat['rank'] = rank
    other = idx[labels == -1]
    entry.update(
        k=k,
        other=dict(
            size=int(len(other)),
            samples=[ev.rows[i]['dataset_index'] for i in other],
        ),
    )
    return entry, found


def _nearest(feats: np.ndarray, centroid: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` rows of ``feats`` most cosine-similar."""
    sims = feats @ centroid / np.maximum(np.linalg.norm(feats, axis=1), 1e-12)
    order = np.argsort(-sims, kind='stable')
    return order[:k]


def _describe(
    ev: Evidence,
    members: np.ndarray,
    cls: int,
    opts: PatternOptions,
    entry: Dict[str, Any],
) -> Dict[str, Any]:
    """One pattern: numbers, where, typical samples, look-alikes."""
    rows = [ev.rows[i] for i in members]
    scores = np.array([float(r['score']) for r in rows])
    centroid = ev.feats[members].mean(0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    typical = members[_nearest(ev.feats[members], centroid, opts.shown)]
    _, layout = split_descriptors(ev.desc[members])
    mean_layout = layout.mean(0).reshape(LAYOUT_SIDE, LAYOUT_SIDE)
    peak = np.unravel_index(int(np.argmax(mean_layout)), mean_layout.shape)
    return dict(
        cls=cls,
        class_name=entry['name'],
        errors=opts.errors,
        size=len(rows),
        share=round(len(rows) / entry['mistakes'], 4),
        mean_score=round(float(scores.mean()), 4),
        rank_score=round(float(len(rows) * scores.mean()), 4),
        samples=[r['dataset_index'] for r in rows],
        img_paths=[r.get('img_path') or '' for r in rows],
        typical=[ev.rows[i]['dataset_index'] for i in typical],
        where=dict(
            peak=[int(peak[0]), int(peak[1])],
            text=_where_text(peak, LAYOUT_SIDE),
            layout=np.round(mean_layout, 3).tolist(),
        ),
        lookalikes=_lookalikes(ev, cls, centroid, opts),
        centroid=np.round(centroid, 5).tolist(),
    )


def _where_text(peak, side: int) -> str:
    """``'top left'``, ``'centre'``... for a cell of a side x side grid."""
    thirds = [('top', 'middle', 'bottom'), ('left', 'centre', 'right')]
    row, col = (
        thirds[a][min(2, 3 * int(p) // side)] for a, p in enumerate(peak)
    )
    return 'centre' if (row, col) == ('middle', 'centre') else f'{row} {col}'


def _lookalikes(
    ev: Evidence, cls: int, centroid: np.ndarray, opts: PatternOptions
) -> List[Dict[str, Any]]:
    """Correctly rejected samples (neither ground truth nor prediction
    ``cls``) nearest to the pattern: the contrast that says whether the
    pattern is a shortcut. Their maps of ``cls`` are used when the dump has
    them, else their maps of their own prediction."""
    pool = [
        i
        for i, r in enumerate(ev.all_rows)
        if r.get('gt') is not None
        and not r['misclassified']
        and int(r['gt']) != cls
        and int(r['pred']) != cls
    ]
    of_cls = [i for i in pool if ev.all_rows[i].get('target') == cls]
    if of_cls:
        pool = of_cls
    else:
        pool = [
            i
            for i in pool
            if ev.all_rows[i]['target'] == ev.all_rows[i]['pred']
        ]
    if not pool:
        return []
    feats = pattern_features(ev.all_desc[pool], opts.layout_weight)
    near = _nearest(feats, centroid, opts.shown)
    sims = (
        feats[near]
        @ centroid
        / np.maximum(np.linalg.norm(feats[near], axis=1), 1e-12)
    )
    return [
        dict(
            dataset_index=ev.all_rows[pool[i]]['dataset_index'],
            img_path=ev.all_rows[pool[i]].get('img_path') or '',
            gt=ev.all_rows[pool[i]]['gt'],
            similarity=round(float(s), 4),
        )
        for i, s in zip(near, sims)
    ]
