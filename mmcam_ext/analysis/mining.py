"""Mining negatives: pool images that look like an error pattern.

A pool dump (unlabelled images explained the same way as the dump whose
mistakes were grouped, for the pattern's class) is ranked per pattern by
the cosine similarity of its descriptors to the pattern's centroid, plus
``score_weight`` times the model's score for the pattern's class. All
patterns of a class are ranked with one matrix product over the
memory-mapped descriptors; no Python loop runs per image.
"""

import os.path as osp
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from .clustering import pattern_features
from .dump_descriptors import dump_signature, load_descriptors

__all__ = [
    'MineOptions',
    'mine_negatives',
    'check_compatible',
    'annotation_lines',
]

PathLike = Union[str, Path]
#: Signature keys compared when both dumps record them.
SIGNATURE_KEYS = (
    'method',
    'descriptor_dim',
    'num_classes',
    'target_layers',
    'model',
)


@dataclass
class MineOptions:
    """How pool images are ranked and how many are kept.

    Args:
        per_pattern (int): Images kept per pattern. Defaults to 50.
        patterns (Sequence[int], optional): Pattern ids to mine.
            Defaults to None (all).
        score_weight (float): Weight of the model's score for the
            pattern's class next to the similarity. Defaults to 0.0.
    """

    per_pattern: int = 50
    patterns: Optional[Sequence[int]] = None
    score_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.per_pattern < 1:
            raise InputError('per_pattern must be >= 1.')


def check_compatible(ours: Dict[str, Any], pool: Dict[str, Any]) -> None:
    """Refuse a pool dump whose descriptors are not comparable.

    Args:
        ours (dict): ``signature`` of ``patterns.json``.
        pool (dict): :func:`~.dump_descriptors.dump_signature` of the pool.

    Raises:
        InputError: Naming every fact that differs.
    """
    diff = [
        f'{key} {ours[key]!r} vs {pool[key]!r}'
        for key in SIGNATURE_KEYS
        if ours.get(key) is not None
        and pool.get(key) is not None
        and ours[key] != pool[key]
    ]
    if diff:
        raise InputError(
            "The pool dump was not explained like the patterns' dump "
            f'(patterns vs pool: {"; ".join(diff)}): its descriptors are '
            'not comparable. Explain the pool with the same model, method '
            'and target layers.'
        )


def _pool(folder: PathLike, signature: Dict[str, Any]):
    """Rows and descriptors of the pool for the patterns' method."""
    try:
        rows, desc = load_descriptors(folder)
    except InputError as err:
        raise InputError(f'Pool dump: {err}') from None
    methods = sorted({r['method'] for r in rows})
    if signature['method'] not in methods:
        raise InputError(
            f'The pool dump has descriptors of {methods}, the patterns were '
            f'found with {signature["method"]}: explain the pool with '
            f'--method {signature["method"]}.'
        )
    check_compatible(
        signature, dump_signature(folder, rows, signature['method'])
    )
    keep = np.array([r['method'] == signature['method'] for r in rows])
    return [r for r, k in zip(rows, keep) if k], desc[keep]


def mine_negatives(
    doc: Dict[str, Any],
    pool_folder: PathLike,
    options: Optional[MineOptions] = None,
) -> Dict[str, Any]:
    """Rank a pool dump's images per pattern.

    Args:
        doc (dict): The content of ``patterns.json``.
        pool_folder (str | Path): The pool dump.
        options (MineOptions, optional): Defaults to None (defaults).

    Returns:
        dict: ``{'patterns': [{'id', 'cls', 'images' (best first),
        'dataset_index', 'similarity', 'score'}], 'pool', 'base'}``.

    Raises:
        InputError: An unknown pattern id, a pool of another model or
            method, or a pool without maps of a pattern's class.
    """
    opts = options or MineOptions()
    chosen = _chosen(doc, opts.patterns)
    rows, desc = _pool(pool_folder, doc['signature'])
    weight = doc.get('features', {}).get('layout_weight', 0.0)
    targets = np.array([int(r['target']) for r in rows])
    out = []
    for cls in sorted({p['cls'] for p in chosen}):
        sel = np.flatnonzero(targets == cls)
        if not len(sel):
            raise InputError(
                f'The pool dump has no maps of class {cls}: explain the '
                f'pool for that class (tools/vis_cam.py --save-raw '
                f'--target-category {cls}).'
            )
        pats = [p for p in chosen if p['cls'] == cls]
        out += _rank_class(rows, desc, sel, pats, weight, opts)
    out.sort(key=lambda p: p['id'])
    return dict(
        pool=str(Path(pool_folder).resolve()),
        method=doc['signature']['method'],
        patterns=out,
    )


def _chosen(doc: Dict[str, Any], ids: Optional[Sequence[int]]) -> List[dict]:
    """The patterns to mine, checked."""
    known = {p['id']: p for p in doc['patterns']}
    if not known:
        raise InputError('patterns.json holds no patterns to mine for.')
    if ids is None:
        return list(known.values())
    bad = [i for i in ids if i not in known]
    if bad:
        raise InputError(
            f'Unknown pattern id(s) {bad}; patterns.json has {sorted(known)}.'
        )
    return [known[i] for i in ids]


def _rank_class(rows, desc, sel, pats, weight, opts) -> List[Dict[str, Any]]:
    """Top images of the pool rows ``sel`` for each pattern of a class."""
    feats = pattern_features(desc[sel], weight)
    cents = np.array([p['centroid'] for p in pats], np.float32)
    norms = np.maximum(np.linalg.norm(feats, axis=1), 1e-12)
    sims = (feats @ cents.T) / norms[:, None]
    scores = np.array([float(rows[i]['target_score'] or 0) for i in sel])
    rank = sims + opts.score_weight * scores[:, None]
    k = min(opts.per_pattern, len(sel))
    out = []
    for j, pat in enumerate(pats):
        top = np.argpartition(-rank[:, j], k - 1)[:k]
        top = top[np.argsort(-rank[top, j], kind='stable')]
        out.append(
            dict(
                id=pat['id'],
                cls=pat['cls'],
                images=[rows[sel[t]].get('img_path') or '' for t in top],
                dataset_index=[rows[sel[t]]['dataset_index'] for t in top],
                similarity=np.round(sims[top, j], 4).tolist(),
                score=np.round(scores[top], 4).tolist(),
            )
        )
    return out


def annotation_lines(
    mined: Dict[str, Any], label: int, base: PathLike = '.'
) -> List[str]:
    """``path label`` lines of MMPretrain's ``CustomDataset`` ann_file.

    Each image once (in the order of the first pattern that proposes it);
    relative paths that exist from ``base`` are made absolute, so the file
    works with any ``data_prefix``.

    Args:
        mined (dict): Result of :func:`mine_negatives`.
        label (int): The class the negatives are labelled with.
        base (str | Path): Folder relative image paths are resolved from.
            Defaults to ``'.'``.

    Returns:
        list[str]: The lines.
    """
    seen, lines = set(), []
    for pat in mined['patterns']:
        for path in pat['images']:
            if not path or path in seen:
                continue
            seen.add(path)
            full = osp.join(str(base), path)
            if not osp.isabs(path) and osp.exists(full):
                path = osp.abspath(full)
            lines.append(f'{path} {int(label)}')
    return lines
