"""The error-patterns loop, planted and measured.

A tiny CNN learns planted decoys as evidence of the positive class
(:mod:`benchmarks.patterns_data`). Its false positives on a validation
split are written as a dump with descriptors, grouped by
:func:`mmcam_ext.analysis.discover_patterns`, and each planted cause is
scored by its best pattern (precision, recall, F1) against three
baselines: a random partition, k-means on pixels and the same clustering
on plain (unweighted) pooled features. A pool of unlabelled negatives is
mined per pattern (:func:`mmcam_ext.analysis.mine_negatives`, precision at
50 against the pool's base rate), and the model is fine-tuned with the
mined negatives and, for comparison, with as many random pool images; the
false-positive rate at 95 % recall on a fresh test split says what the fix
is worth. Two timings on synthetic dumps close the report: grouping 10,000
mistakes and mining a 100,000-image pool.

:func:`explain_pool` is the one place descriptors come from (CAMEngine's
maps and a forward hook on the target layer); it can be switched to
reading a dump written by the tool or the hook.
"""

import contextlib
import copy
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from mmcam_ext.analysis import (
    MineOptions,
    PatternOptions,
    cluster_patterns,
    discover_patterns,
    mine_negatives,
    pattern_features,
)
from mmcam_ext.apis import CAMEngine
from mmcam_ext.fileio import write_index, write_png
from mmcam_ext.utils.descriptors import evidence_descriptors

from .patterns_data import (
    CAUSES,
    TARGET_LAYER,
    build_model,
    draw_split,
    fit_head,
    pooled_features,
    pretrain_backbone,
    pretrain_split,
    to_tensor,
)

__all__ = [
    'PatternsBenchConfig',
    'QUICK',
    'explain_pool',
    'write_dump',
    'run_patterns_benchmark',
    'format_report',
    'timing_rounds',
]

METHOD = 'GradCAM'
CLASSES = ['background', 'object']
POSITIVE = 1
#: Bumped whenever the generated data change (the cached weights go stale).
DATA_VERSION = 'v3'
#: The settings the trained weights depend on (the cache key).
MODEL_KEYS = ('pretrain', 'train', 'epochs', 'width', 'seed')


@dataclass
class PatternsBenchConfig:
    """Sizes and training settings of one run.

    Args:
        pretrain (int): Unbiased images the backbone is pretrained on
            (multi-label: which patches and clutter colours are there).
            Defaults to 2500.
        train (int): Task training images per class (the head is trained
            on them, on the frozen backbone). Defaults to 1200.
        val_neg (int): Negatives of the split whose mistakes are grouped.
            Defaults to 2000.
        pool (int): Unlabelled pool images. Defaults to 3000.
        test_neg (int): Negatives of the fresh test split (and a quarter
            as many positives). Defaults to 6000.
        cause_rate (float): Share of non-training negatives per cause.
            Defaults to 0.06.
        epochs (int): Pretraining epochs. Defaults to 8.
        per_pattern (int): Mined negatives per pattern added for the fix
            (precision@50 is read from a ranking of at least 50).
            Defaults to 50.
        width (int): Width of the CNN. Defaults to 16.
        seed (int): Seed of data, model and clustering. Defaults to 0.
    """

    pretrain: int = 2500
    train: int = 1200
    val_neg: int = 2000
    pool: int = 3000
    test_neg: int = 6000
    cause_rate: float = 0.06
    epochs: int = 8
    per_pattern: int = 50
    width: int = 16
    seed: int = 0


#: A small run for the test suite (machinery, not the headline targets):
#: the same model (and cached weights) as the full run, smaller splits.
QUICK = PatternsBenchConfig(
    val_neg=1000,
    pool=1000,
    test_neg=1000,
    cause_rate=0.08,
    per_pattern=20,
)


def explain_pool(
    model: torch.nn.Module,
    images: np.ndarray,
    target: Optional[int] = None,
    batch: int = 256,
) -> Dict[str, np.ndarray]:
    """Maps and descriptors of ``images`` (the benchmark's one source).

    Args:
        model (nn.Module): The classifier.
        images (np.ndarray): uint8 ``(N, H, W, 3)``.
        target (int, optional): Class explained for every image. Defaults
            to None (each image's prediction).
        batch (int): Batch size. Defaults to 256.

    Returns:
        dict: ``pred``, ``score`` (of the prediction), ``target``,
        ``target_score``, ``maps`` ``(N, H, W)``, ``desc`` (CAM-weighted)
        and ``plain`` (unweighted) descriptors.
    """
    engine = CAMEngine(model, target_layers=[TARGET_LAYER])
    layer = dict(model.named_modules())[TARGET_LAYER]
    acts: List[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    parts: Dict[str, List[np.ndarray]] = {}
    try:
        for start in range(0, len(images), batch):
            x = to_tensor(images[start : start + batch])
            with torch.no_grad():
                model(x, mode='tensor')
            a = acts.pop()
            acts.clear()
            res = engine.explain(x, ['gradcam'], targets=target)
            maps = torch.from_numpy(res.maps[METHOD][:, 0])
            out = dict(
                pred=res.pred_labels,
                score=res.pred_scores,
                target=res.targets[:, 0],
                target_score=res.target_scores[:, 0],
                maps=maps.numpy(),
                desc=evidence_descriptors(a, maps).numpy(),
                plain=evidence_descriptors(a, None).numpy(),
            )
            for key, value in out.items():
                parts.setdefault(key, []).append(np.asarray(value))
    finally:
        handle.remove()
    return {k: np.concatenate(v) for k, v in parts.items()}


def write_dump(
    folder: Path,
    images: np.ndarray,
    res: Dict[str, np.ndarray],
    labels: Optional[np.ndarray] = None,
    kind: str = 'pred',
) -> Path:
    """A dump folder as the hook (``labels`` given) or the tool writes it:
    images, ``maps/``, ``descriptors/``, ``index.json``.

    Args:
        folder (Path): Where to write.
        images (np.ndarray): The images (written as PNG files).
        res (dict): :func:`explain_pool` output.
        labels (np.ndarray, optional): Ground truth. Defaults to None.
        kind (str): Target kind of the rows. Defaults to ``'pred'``.

    Returns:
        Path: ``folder``.
    """
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    (folder / 'maps').mkdir(exist_ok=True)
    (folder / 'descriptors').mkdir(exist_ok=True)
    h, w = res['maps'].shape[1:]
    raw = f'maps/{METHOD}_{kind}_{h}x{w}.npy'
    desc = f'descriptors/{METHOD}_{kind}.npy'
    np.save(folder / raw, res['maps'].astype(np.float16))
    np.save(folder / desc, res['desc'].astype(np.float16))
    rows = []
    for i, img in enumerate(images):
        path = folder / 'images' / f'{i}.png'
        write_png(path, img)
        gt = None if labels is None else int(labels[i])
        rows.append(
            dict(
                dataset_index=i,
                img_path=str(path),
                gt=gt,
                pred=int(res['pred'][i]),
                score=float(res['score'][i]),
                misclassified=gt is not None and gt != int(res['pred'][i]),
                target_kind=kind,
                target=int(res['target'][i]),
                target_score=float(res['target_score'][i]),
                method=METHOD,
                raw_file=raw,
                raw_row=i,
                desc_file=desc,
                desc_row=i,
                rank=0,
            )
        )
    meta = dict(
        classes=CLASSES, methods=[METHOD], target_layers=[TARGET_LAYER]
    )
    write_index(folder, rows, 'json', meta)
    return folder


def _best_f1(
    groups: List[np.ndarray], members: np.ndarray
) -> Dict[str, float]:
    """Best precision/recall/F1 of one cause over the groups.

    ``members``: boolean mask of the cause over the grouped samples;
    ``groups``: index arrays into the same samples.
    """
    best = dict(precision=0.0, recall=0.0, f1=0.0, group=-1)
    total = int(members.sum())
    for g, idx in enumerate(groups):
        hit = int(members[idx].sum())
        if not hit:
            continue
        p, r = hit / len(idx), hit / total
        f1 = 2 * p * r / (p + r)
        if f1 > best['f1']:
            best = dict(precision=p, recall=r, f1=f1, group=g)
    return best


def _groups(labels: np.ndarray) -> List[np.ndarray]:
    return [np.flatnonzero(labels == g) for g in range(labels.max() + 1)]


def _recovery(cfg, val, res, fp, doc) -> Dict[str, Any]:
    """(a): per cause, the best pattern of each grouping."""
    causes = val['causes'][fp]
    pos = {int(i): k for k, i in enumerate(fp)}
    ours = [np.array([pos[s] for s in p['samples']]) for p in doc['patterns']]
    k = max(2, len(ours))
    rng = np.random.default_rng(cfg.seed)
    pixels = val['images'][fp].reshape(len(fp), 8, 4, 8, 4, 3).mean((2, 4))
    base = dict(
        ours=ours,
        random=_groups(rng.integers(0, k, len(fp))),
        pixels=_groups(
            cluster_patterns(
                pixels.reshape(len(fp), -1).astype(np.float32),
                seed=cfg.seed,
            )[0]
        ),
        plain=_groups(
            cluster_patterns(
                pattern_features(res['plain'][fp]), seed=cfg.seed
            )[0]
        ),
    )
    table = {}
    for c, name in enumerate(CAUSES):
        mask = causes == c
        table[name] = dict(
            fps=int(mask.sum()),
            **{b: _best_f1(g, mask) for b, g in base.items()},
        )
    return table


def _mining(cfg, doc, pool, pool_dir, recovery) -> Dict[str, Any]:
    """(b): precision@50 of each cause's best pattern, and the negatives
    mined for all patterns (for the fix)."""
    mined = mine_negatives(
        doc, pool_dir, MineOptions(max(50, cfg.per_pattern))
    )
    by_id = {p['id']: p for p in mined['patterns']}
    table = {}
    for c, name in enumerate(CAUSES):
        g = recovery[name]['ours']['group']
        base = float((pool['causes'] == c).mean())
        if g < 0:
            table[name] = dict(pattern=None, p_at_50=0.0, base_rate=base)
            continue
        top = np.array(by_id[doc['patterns'][g]['id']]['dataset_index'][:50])
        table[name] = dict(
            pattern=doc['patterns'][g]['id'],
            p_at_50=float((pool['causes'][top] == c).mean()),
            base_rate=base,
        )
    chosen = sorted(
        {
            i
            for p in mined['patterns']
            for i in p['dataset_index'][: cfg.per_pattern]
        }
    )
    return dict(table=table, mined=np.array(chosen, np.int64))


def fp_rate_at_recall(
    scores: np.ndarray, labels: np.ndarray, recall: float = 0.95
) -> float:
    """False-positive rate at the threshold that keeps ``recall``.

    Args:
        scores (np.ndarray): Positive-class scores.
        labels (np.ndarray): 1 positive, 0 negative.
        recall (float): Recall kept. Defaults to 0.95.

    Returns:
        float: Share of negatives scoring at least the threshold.
    """
    pos = np.sort(scores[labels == 1])
    # the +1e-9: (1 - 0.8) * 5 is 0.99999... in floating point
    thr = pos[int(np.floor((1 - recall) * len(pos) + 1e-9))]
    return float((scores[labels == 0] >= thr).mean())


def _scores(model, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = model(to_tensor(images), mode='tensor')
    return logits.softmax(1)[:, POSITIVE].numpy()


def _fix(cfg, base, train, pool, mined, test) -> Dict[str, Any]:
    """(c): FP rate at 95 % recall: base, head retrained with the mined
    negatives added, and with as many random pool images added."""
    rng = np.random.default_rng(cfg.seed + 1)
    rand = rng.choice(len(pool['images']), len(mined), replace=False)
    feats = pooled_features(base, train['images'])
    pool_feats = pooled_features(base, pool['images'])
    out: Dict[str, Any] = dict(extra=int(len(mined)))
    for name, extra in (('base', None), ('mined', mined), ('random', rand)):
        model = copy.deepcopy(base)
        if extra is not None:
            fit_head(
                model,
                torch.cat([feats, pool_feats[extra]]),
                np.concatenate([train['labels'], np.zeros(len(extra))]),
                seed=cfg.seed,
            )
        scores = _scores(model, test['images'])
        out[name] = fp_rate_at_recall(scores, test['labels'])
    for name in ('mined', 'random'):
        out[f'{name}_cut'] = 1 - out[name] / max(out['base'], 1e-12)
    return out


def _base_model(cfg, train, cache: Optional[Path]):
    """The trained model (pretrained backbone, task head), cached under
    ``cache`` by config."""
    model = build_model(cfg.width, cfg.seed)
    key = hashlib.sha1(
        json.dumps(
            [[getattr(cfg, k) for k in MODEL_KEYS], DATA_VERSION]
        ).encode()
    ).hexdigest()[:12]
    path = cache / f'patterns_cnn_{key}.pth' if cache else None
    if path is not None and path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    pre = pretrain_split(cfg.pretrain, cfg.seed * 10 + 5)
    pretrain_backbone(model, pre['images'], pre['items'], cfg.epochs, cfg.seed)
    feats = pooled_features(model, train['images'])
    fit_head(model, feats, train['labels'], seed=cfg.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model


def run_patterns_benchmark(
    cfg: PatternsBenchConfig, work_dir: Path, cache: Optional[Path] = None
) -> Dict[str, Any]:
    """Train, group, mine and fine-tune; the figures of (a)-(c).

    Args:
        cfg (PatternsBenchConfig): Sizes and settings.
        work_dir (Path): Folder for the dumps.
        cache (Path, optional): Folder of cached trained weights.
            Defaults to None (always train).

    Returns:
        dict: ``recovery`` (per cause and grouping), ``mining`` (per cause),
        ``fix`` (FP rates and cuts), ``fps`` and ``seconds``.
    """
    start = time.perf_counter()
    s = cfg.seed * 10
    train = draw_split(cfg.train, cfg.train, 0.0, s, training=True)
    val = draw_split(cfg.val_neg // 4, cfg.val_neg, cfg.cause_rate, s + 1)
    pool = draw_split(0, cfg.pool, cfg.cause_rate * 0.8, s + 2)
    test = draw_split(cfg.test_neg // 4, cfg.test_neg, cfg.cause_rate, s + 3)
    base = _base_model(cfg, train, cache)
    res = explain_pool(base, val['images'])
    val_dir = write_dump(work_dir / 'val', val['images'], res, val['labels'])
    fp = np.flatnonzero((val['labels'] == 0) & (res['pred'] == POSITIVE))
    doc = discover_patterns(
        val_dir, PatternOptions(classes=[POSITIVE], seed=cfg.seed)
    )
    recovery = _recovery(cfg, val, res, fp, doc)
    pool_res = explain_pool(base, pool['images'], target=POSITIVE)
    pool_dir = write_dump(
        work_dir / 'pool', pool['images'], pool_res, kind='category1'
    )
    mining = _mining(cfg, doc, pool, pool_dir, recovery)
    fix = _fix(cfg, base, train, pool, mining['mined'], test)
    return dict(
        fps=int(len(fp)),
        patterns=len(doc['patterns']),
        recovery=recovery,
        mining=mining['table'],
        fix=fix,
        seconds=time.perf_counter() - start,
    )


def synthetic_dump(
    folder: Path, num: int, mistakes: bool, groups: int = 6, seed: int = 0
) -> Path:
    """A large dump written directly (no model): ``num`` rows of class 1
    with descriptors in ``groups`` clusters; false positives with small
    maps (``mistakes``) or an unlabelled pool without maps.

    Args:
        folder (Path): Where to write.
        num (int): Rows.
        mistakes (bool): False positives of class 1 (else a pool).
        groups (int): Planted clusters. Defaults to 6.
        seed (int): Seed. Defaults to 0.

    Returns:
        Path: ``folder``.
    """
    from mmcam_ext.utils.descriptors import DESCRIPTOR_DIM

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'descriptors').mkdir(exist_ok=True)
    centres = rng.random((groups, DESCRIPTOR_DIM))
    desc = centres[rng.integers(0, groups, num)]
    desc += 0.3 * rng.random((num, DESCRIPTOR_DIM))
    np.save(folder / 'descriptors/GradCAM_pred.npy', desc.astype(np.float16))
    raw = ''
    if mistakes:
        (folder / 'maps').mkdir(exist_ok=True)
        raw = 'maps/GradCAM_pred_16x16.npy'
        np.save(folder / raw, rng.random((num, 16, 16)).astype(np.float16))
    score = np.round(0.5 + 0.5 * rng.random(num), 3).tolist()
    rows = [
        dict(
            dataset_index=i,
            img_path=f'pool/{i}.jpg',
            gt=0 if mistakes else None,
            pred=1,
            score=score[i],
            misclassified=mistakes,
            target_kind='pred',
            target=1,
            target_score=score[i],
            method=METHOD,
            raw_file=raw,
            raw_row=i if raw else '',
            desc_file='descriptors/GradCAM_pred.npy',
            desc_row=i,
            rank=0,
        )
        for i in range(num)
    ]
    write_index(folder, rows, 'json', dict(classes=CLASSES))
    return folder


def timing_rounds(
    work_dir: Path,
    mistakes: int = 10_000,
    pool: int = 100_000,
    rounds: int = 3,
) -> Dict[str, List[float]]:
    """Seconds of ``find_patterns`` on ``mistakes`` false positives and of
    ``mine_negatives`` on a ``pool``-image dump (the command-line tools,
    files included), alternated over ``rounds``.

    Args:
        work_dir (Path): Folder for the dumps.
        mistakes (int): False positives grouped. Defaults to 10,000.
        pool (int): Pool images mined. Defaults to 100,000.
        rounds (int): Rounds. Defaults to 3.

    Returns:
        dict: ``find`` and ``mine``: seconds per round.
    """
    from mmcam_ext.cli.find_patterns import main as find_main
    from mmcam_ext.cli.mine_negatives import main as mine_main

    dump = synthetic_dump(work_dir / 'mistakes', mistakes, True)
    pool_dir = synthetic_dump(work_dir / 'pool', pool, False, seed=0)
    out: Dict[str, List[float]] = dict(find=[], mine=[])
    quiet = io.StringIO()  # the tools' own summary lines
    for _ in range(rounds):
        with contextlib.redirect_stdout(quiet):
            t = time.perf_counter()
            assert find_main([str(dump), '--classes', '1']) == 0
            out['find'].append(time.perf_counter() - t)
            t = time.perf_counter()
            assert mine_main([str(dump / 'patterns'), str(pool_dir)]) == 0
            out['mine'].append(time.perf_counter() - t)
    return out


def _row(cells: List[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def format_report(
    result: Dict[str, Any], timings: Optional[Dict[str, List[float]]] = None
) -> str:
    """The benchmark's Markdown tables, with the targets.

    Args:
        result (dict): :func:`run_patterns_benchmark` output.
        timings (dict, optional): :func:`timing_rounds` output.
            Defaults to None.

    Returns:
        str: The report.
    """
    lines = [
        f'{result["fps"]} false positives, {result["patterns"]} patterns '
        f'({result["seconds"]:.0f} s)',
        '',
        '(a) pattern recovery, best pattern per planted cause: F1 '
        '(precision / recall); target F1 >= 0.8',
        '',
        _row(
            [
                'cause',
                'FPs',
                'CAM descriptors',
                'plain pooled',
                'pixels k-means',
                'random',
            ]
        ),
        _row(['---'] * 6),
    ]
    for name, r in result['recovery'].items():
        cells = [
            f'{r[b]["f1"]:.2f} ({r[b]["precision"]:.2f} / '
            f'{r[b]["recall"]:.2f})'
            for b in ('ours', 'plain', 'pixels', 'random')
        ]
        lines.append(_row([name, str(r['fps'])] + cells))
    lines += [
        '',
        '(b) mined negatives: precision@50 (target >= 0.8) vs base rate',
        '',
        _row(['cause', 'pattern', 'precision@50', 'pool base rate']),
        _row(['---'] * 4),
    ]
    for name, m in result['mining'].items():
        lines.append(
            _row(
                [
                    name,
                    str(m['pattern']),
                    f'{m["p_at_50"]:.2f}',
                    f'{m["base_rate"]:.3f}',
                ]
            )
        )
    f = result['fix']
    lines += [
        '',
        f'(c) FP rate at 95 % recall on a fresh test split ({f["extra"]} '
        'extra negatives); target: cut >= 76 % and >= 2x the random cut',
        '',
        _row(['model', 'FP rate', 'cut']),
        _row(['---'] * 3),
        _row(['base', f'{f["base"]:.4f}', '']),
        _row(
            [
                '+ mined negatives',
                f'{f["mined"]:.4f}',
                f'{100 * f["mined_cut"]:.1f} %',
            ]
        ),
        _row(
            [
                '+ random pool images',
                f'{f["random"]:.4f}',
                f'{100 * f["random_cut"]:.1f} %',
            ]
        ),
    ]
    if timings:
        lines += [
            '',
            'Timings (command-line tools, seconds: median [min, max])',
        ]
        for key, label, target in (
            ('find', 'find_patterns, 10,000 mistakes', 30),
            ('mine', 'mine_negatives, 100,000-image pool', 60),
        ):
            t = timings[key]
            lines.append(
                f'- {label}: {np.median(t):.2f} [{min(t):.2f}, {max(t):.2f}]'
                f' (target < {target})'
            )
    return '\n'.join(lines)
