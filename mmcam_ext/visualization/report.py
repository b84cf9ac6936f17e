"""False-positive report: misclassified samples grouped by confusion.

The use that motivates CAMs over a whole test set: find the *patterns*
behind a classifier's mistakes. Misclassified samples are grouped by
(ground truth -> prediction) pair, pairs sorted by count; per pair the
report gives

* ``count`` and ``share`` of all misclassified samples: which confusions
  matter;
* ``mean_score``: mean confidence of the wrong prediction (confident
  mistakes point to a systematic confusion rather than noise);
* ``mean_center_energy_<method>_<kind>``: mean share of the map's mass in
  the central box (middle half of height and width, a quarter of the area,
  :func:`mmcam_ext.fileio.center_energy`; a uniform map scores 0.25). On
  object-centred data, wrong predictions whose evidence lies off-centre
  were driven by context or background (the "crowds", "weddings"
  patterns), those with central evidence by the object itself; for the
  ``gt`` target it says whether the model saw the true class's object at
  all;
* ``blank_share``: maps with no positive evidence at all;
* ``samples``: dataset indices, most confident first.

Files: ``false_positives.csv`` (one line per pair), ``false_positives.json``
(pairs with their samples) and ``false_positives.html`` (per pair its
samples' CAMs side by side, from the gallery's thumbnail sheets).
"""

import csv
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..fileio.thumbs import SHEET_COLS, TILE_SIZE, parse_thumb
from ..utils.image import class_text
from .gallery import PATTERNS_LINK

__all__ = ['false_positive_pairs', 'write_report', 'SHOWN_PER_PAIR']

#: Samples drawn per pair in the HTML view (all are listed in the JSON).
SHOWN_PER_PAIR = 24
Pair = Tuple[int, int]


def false_positive_pairs(
    rows: Sequence[Dict[str, Any]],
) -> List[Dict[str, Any]]:
    """Per (gt -> pred) pair of misclassified samples, its statistics.

    Args:
        rows (Sequence[dict]): Index rows of one dump.

    Returns:
        list[dict]: Pairs sorted by count (then gt, pred), each with
        ``gt``, ``pred``, ``count``, ``share``, ``mean_score``,
        ``blank_share``, ``mean_center_energy`` (``{'Method/kind': value}``)
        and ``samples`` (dataset indices, most confident first).
    """
    wrong = [r for r in rows if r['misclassified'] and r['gt'] is not None]
    groups: Dict[Pair, List[Dict[str, Any]]] = {}
    for row in wrong:
        groups.setdefault((int(row['gt']), int(row['pred'])), []).append(row)
    total = len({r['dataset_index'] for r in wrong})
    pairs = [_pair_stats(pair, grp, total) for pair, grp in groups.items()]
    return sorted(pairs, key=lambda p: (-p['count'], p['gt'], p['pred']))


def _pair_stats(
    pair: Pair, rows: List[Dict[str, Any]], total: int
) -> Dict[str, Any]:
    scores: Dict[int, float] = {}
    energy: Dict[str, List[float]] = {}
    for row in rows:
        scores[int(row['dataset_index'])] = float(row['score'])
        if row.get('center_energy') is not None:
            key = f'{row["method"]}/{row["target_kind"]}'
            energy.setdefault(key, []).append(float(row['center_energy']))
    order = sorted(scores, key=lambda i: (-scores[i], i))
    return dict(
        gt=pair[0],
        pred=pair[1],
        count=len(scores),
        share=round(len(scores) / max(total, 1), 4),
        mean_score=round(float(np.mean(list(scores.values()))), 4),
        blank_share=round(
            float(np.mean([bool(r.get('blank')) for r in rows])), 4
        ),
        mean_center_energy={
            k: round(float(np.mean(v)), 4) for k, v in sorted(energy.items())
        },
        samples=order,
    )


def write_report(
    folder: Path,
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    title: str = 'CAMs',
) -> List[Path]:
    """Write ``false_positives.{csv,json,html}`` into ``folder``.

    Args:
        folder (Path): The dump folder.
        rows (Sequence[dict]): Its index rows.
        classes (Sequence[str], optional): Class names. Defaults to None.
        title (str): Title of the HTML page. Defaults to ``'CAMs'``.

    Returns:
        list[Path]: The three files.
    """
    folder = Path(folder)
    pairs = false_positive_pairs(rows)
    names = list(classes) if classes is not None else None
    for pair in pairs:
        pair['gt_name'] = class_text(pair['gt'], names)
        pair['pred_name'] = class_text(pair['pred'], names)
    paths = [folder / f'false_positives.{ext}' for ext in ('csv', 'json')]
    _write_csv(paths[0], pairs)
    paths[1].write_text(json.dumps(dict(pairs=pairs), indent=1))
    paths.append(folder / 'false_positives.html')
    paths[2].write_text(_render(pairs, rows, names, title), encoding='utf-8')
    return paths


def _write_csv(path: Path, pairs: List[Dict[str, Any]]) -> None:
    keys = sorted({k for p in pairs for k in p['mean_center_energy']})
    head = ['gt', 'gt_name', 'pred', 'pred_name', 'count', 'share']
    head += ['mean_score', 'blank_share']
    head += [f'mean_center_energy_{k.replace("/", "_")}' for k in keys]
    with path.open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(head + ['samples'])
        for p in pairs:
            writer.writerow(
                [p[k] for k in head[:8]]
                + [p['mean_center_energy'].get(k, '') for k in keys]
                + [' '.join(map(str, p['samples']))]
            )


def _tile(ref: str, file: str, caption: str) -> str:
    caption = html.escape(caption)
    if ref:
        sheet, tile = parse_thumb(ref)
        x, y = (
            -(tile % SHEET_COLS) * TILE_SIZE,
            -(tile // SHEET_COLS) * TILE_SIZE,
        )
        box = (
            f'<span class="tile" style="background-image:url('
            f"'{html.escape(sheet, quote=True)}');background-position:"
            f'{x}px {y}px"></span>'
        )
    elif file:
        box = f'<img src="{html.escape(file, quote=True)}" loading="lazy">'
    else:
        box = '<span class="tile"></span>'
    if file:
        box = f'<a href="{html.escape(file, quote=True)}">{box}</a>'
    return f'<figure>{box}<figcaption>{caption}</figcaption></figure>'


def _render(pairs, rows, names, title) -> str:
    by_sample: Dict[int, List[Dict[str, Any]]] = {}
    for row in rows:
        by_sample.setdefault(int(row['dataset_index']), []).append(row)
    parts = []
    for p in pairs:
        energy = ', '.join(
            f'{k} {v:.2f}' for k, v in p['mean_center_energy'].items()
        )
        cards = []
        for idx in p['samples'][:SHOWN_PER_PAIR]:
            group = by_sample[idx]
            first = group[0]
            tiles = [
                _tile(
                    first.get('input_thumb', ''),
                    first.get('input_file', ''),
                    f'#{idx} {first["score"]:.2f}',
                )
            ]
            tiles += [
                _tile(
                    r.get('thumb', ''),
                    r.get('file', ''),
                    f'{r["method"]} {r["target_kind"]}',
                )
                for r in group
            ]
            cards.append(f'<div class="card">{"".join(tiles)}</div>')
        more = len(p['samples']) - SHOWN_PER_PAIR
        parts.append(
            f'<section><h2>{html.escape(p["gt_name"])} &rarr; '
            f'{html.escape(p["pred_name"])}: {p["count"]} '
            f'({100 * p["share"]:.1f} %)</h2><p>mean score '
            f'{p["mean_score"]:.3f}; central energy: {html.escape(energy)}; '
            f'blank maps {100 * p["blank_share"]:.0f} %</p>'
            f'<div class="cards">{"".join(cards)}</div>'
            + (
                f'<p>... and {more} more (false_positives.json)</p>'
                if more > 0
                else ''
            )
            + '</section>'
        )
    body = ''.join(parts) or '<p>No misclassified samples in this dump.</p>'
    title = html.escape(f'False positives: {title}')
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}'
        f'</title><style>{_CSS}</style></head><body><h1>{title}</h1>'
        f'<p>{len(pairs)} confused pairs; '
        '<a href="false_positives.csv">CSV</a>, '
        '<a href="false_positives.json">JSON</a>, '
        '<a href="index.html">gallery</a> '
        f'{PATTERNS_LINK}</p>{body}</body></html>\n'
    )


_CSS = f"""
body{{font-family:sans-serif;margin:12px;background:#f4f4f4}}
section{{background:#fff;margin:10px 0;padding:8px;border-radius:6px}}
h2{{font-size:15px;margin:0 0 4px 0;color:#b00}}
.cards{{display:flex;flex-wrap:wrap;gap:8px}}
.card{{display:flex;gap:2px;border:1px solid #ccc;padding:3px}}
figure{{margin:0;font-size:10px;text-align:center}}
.tile{{display:block;width:{TILE_SIZE}px;height:{TILE_SIZE}px;
      background-repeat:no-repeat}}
figure img{{width:{TILE_SIZE}px}}
"""
