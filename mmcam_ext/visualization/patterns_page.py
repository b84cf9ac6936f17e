"""The files of ``find_patterns`` and ``mine_negatives``: JSON, CSV,
images and the HTML pages a person reviews.

``patterns.html`` has one section per pattern (numbers, typical map, the
evidence crops of its most typical samples, the look-alike correct
negatives) and a name field per pattern; *Save names* downloads
``pattern_names.json`` (``{"patterns": [{"id", "name"}]}``).
``mined.html`` shows the proposed negatives per pattern, best first.
Pages open from disk (relative image paths, no network).
"""

import csv
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import matplotlib
import numpy as np

from ..analysis.crops import evidence_crop, read_rgb, typical_map
from ..fileio import CAMDump, write_png
from ..fileio.thumbs import fit_tile
from .gallery import PATTERNS_LINK

__all__ = [
    'write_patterns',
    'render_patterns_page',
    'write_mined',
    'render_mined_page',
    'link_patterns',
    'TILE',
]

#: Side of the crops and maps on the pages, in pixels.
TILE = 128
CSV_FIELDS = (
    'id',
    'cls',
    'class_name',
    'rank',
    'size',
    'share',
    'mean_score',
    'rank_score',
    'where',
    'samples',
)
_CSS = (
    'body{font-family:sans-serif;margin:16px;background:#fafafa}'
    'section{background:#fff;border:1px solid #ddd;margin:12px 0;'
    'padding:8px 12px}figure{display:inline-block;margin:4px;'
    'text-align:center;font-size:11px}figure img{width:128px;height:128px;'
    'object-fit:contain;background:#222}.row{white-space:nowrap;'
    'overflow-x:auto}h2 input{font-size:15px;width:24em}'
)


def _colour(cam: np.ndarray) -> np.ndarray:
    """A ``[0, 1]`` map as a ``TILE x TILE`` jet RGB image."""
    rgb = matplotlib.colormaps['jet'](np.clip(cam, 0, 1))[..., :3]
    img = (rgb * 255).astype(np.uint8)
    return cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


class _Rows:
    """Rows of a dump by (sample, target), for the images of a page."""

    def __init__(self, dump: CAMDump, method: str) -> None:
        self.dump = dump
        self.by: Dict[Tuple[int, Any], Dict[str, Any]] = {}
        self.evidence: Dict[int, Dict[str, Any]] = {}
        for row in dump.rows:
            if row['method'] == method:
                key = (row['dataset_index'], row['target'])
                self.by.setdefault(key, row)
                if row['target'] == row['pred']:
                    self.evidence.setdefault(row['dataset_index'], row)

    def get(self, index: int, target: Any) -> Optional[Dict[str, Any]]:
        return self.by.get((index, target))

    def crop(self, row: Optional[Dict[str, Any]]) -> Optional[np.ndarray]:
        """The evidence crop of a row, or its map when the image is gone."""
        if row is None or not row.get('raw_file'):
            return None
        cam = self.dump.load(row)
        img = read_rgb(row.get('img_path') or '')
        if img is None:
            return _colour(cam / max(float(cam.max()), 1e-12))
        crop = evidence_crop(img, cam)
        return None if crop is None else fit_tile(crop, TILE)


def _save(out: Path, rel: str, img: Optional[np.ndarray]) -> str:
    """Write ``img`` at ``out/rel``; the relative path, '' for None."""
    if img is None:
        return ''
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    write_png(out / rel, img)
    return rel


def _pattern_images(out: Path, pat: Dict[str, Any], rows: _Rows) -> dict:
    """Typical map, crops of typical samples and of look-alikes."""
    pid, cls = pat['id'], pat['cls']
    members = [rows.evidence.get(i) for i in pat['samples']]
    mean = typical_map(rows.dump, [m for m in members if m is not None])
    typ = [
        (
            i,
            _save(
                out, f'crops/p{pid}_{i}.png', rows.crop(rows.evidence.get(i))
            ),
        )
        for i in pat['typical']
    ]
    look = []
    for item in pat['lookalikes']:
        idx = item['dataset_index']
        row = rows.get(idx, cls) or rows.evidence.get(idx)
        look.append(
            (item, _save(out, f'crops/p{pid}_n{idx}.png', rows.crop(row)))
        )
    return dict(
        map=_save(out, f'crops/p{pid}_map.png', _colour(mean)),
        typical=typ,
        lookalikes=look,
    )


def write_patterns(
    out: Path, doc: Dict[str, Any], dump_folder: Path
) -> List[Path]:
    """Write ``patterns.json``, ``patterns.csv``, ``patterns.html`` and the
    images of the pages into ``out``.

    Args:
        out (Path): Output folder (``DUMP_DIR/patterns``).
        doc (dict): Result of
            :func:`mmcam_ext.analysis.discover_patterns`.
        dump_folder (Path): The dump (maps and image paths).

    Returns:
        list[Path]: The JSON, CSV and HTML files.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _Rows(CAMDump(dump_folder), doc['signature']['method'])
    images = {p['id']: _pattern_images(out, p, rows) for p in doc['patterns']}
    paths = [
        out / 'patterns.json',
        out / 'patterns.csv',
        out / 'patterns.html',
    ]
    paths[0].write_text(json.dumps(doc, indent=1))
    with paths[1].open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for p in doc['patterns']:
            writer.writerow(
                [p[k] for k in CSV_FIELDS[:8]]
                + [p['where']['text'], ' '.join(map(str, p['samples']))]
            )
    paths[2].write_text(render_patterns_page(doc, images), encoding='utf-8')
    return paths


_SAVE_JS = """
function patternNames(){var out=[];
  document.querySelectorAll('input.pname').forEach(function(el){
    out.push({id:Number(el.dataset.id),name:el.value});});
  return {patterns:out};}
function saveNames(){var text=JSON.stringify(patternNames(),null,1);
  window.savedNames=text;
  var a=document.createElement('a');
  a.href=URL.createObjectURL(new Blob([text],{type:'application/json'}));
  a.download='pattern_names.json'; document.body.appendChild(a); a.click();
  a.remove();}
"""


def _fig(src: str, caption: str) -> str:
    img = f'<img src="{html.escape(src, quote=True)}">' if src else ''
    text = html.escape(caption)
    return f'<figure>{img}<figcaption>{text}</figcaption></figure>'


def _section(pat: Dict[str, Any], img: Dict[str, Any]) -> str:
    """One pattern's section of ``patterns.html``."""
    pid = pat['id']
    typical = ''.join(_fig(src, f'#{i}') for i, src in img['typical'])
    looks = ''.join(
        _fig(
            src,
            f'#{it["dataset_index"]} gt {it["gt"]} sim {it["similarity"]:.2f}',
        )
        for it, src in img['lookalikes']
    )
    return (
        f'<section class="pattern" data-id="{pid}"><h2>Pattern {pid} '
        f'<input class="pname" data-id="{pid}" placeholder="name this '
        f'pattern"></h2><p>class {html.escape(pat["class_name"])} '
        f'({pat["errors"]}), rank {pat["rank"] + 1}: <b>{pat["size"]}</b> '
        f"mistakes ({100 * pat['share']:.1f} % of the class's), mean wrong "
        f'score {pat["mean_score"]:.3f}; evidence mostly '
        f'{html.escape(pat["where"]["text"])}</p><div class="row">'
        f'{_fig(img["map"], "typical map")}{typical}</div>'
        f'<p>Correct negatives that look the same:</p>'
        f'<div class="row looks">{looks or "none in this dump"}</div>'
        '</section>'
    )


def _class_line(entry: Dict[str, Any]) -> str:
    text = f'{entry["name"]}: {entry["mistakes"]} {entry["errors"]} mistakes'
    if entry.get('skipped'):
        return f'<li>{html.escape(text)}: {html.escape(entry["skipped"])}</li>'
    text += (
        f', {len(entry["patterns"])} patterns, {entry["other"]["size"]} '
        'in no pattern ("other")'
    )
    return f'<li>{html.escape(text)}</li>'


def render_patterns_page(
    doc: Dict[str, Any], images: Dict[int, Dict[str, Any]]
) -> str:
    """HTML text of ``patterns.html``.

    Args:
        doc (dict): The patterns (``patterns.json``).
        images (dict): Pattern id -> image paths (relative to the page).

    Returns:
        str: The page.
    """
    sections = ''.join(_section(p, images[p['id']]) for p in doc['patterns'])
    classes = ''.join(_class_line(e) for e in doc['classes'])
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Error '
        f'patterns</title><style>{_CSS}</style><script>{_SAVE_JS}</script>'
        '</head><body><h1>Error patterns</h1><p>'
        f'{html.escape(doc["signature"]["method"])} descriptors of '
        f'{html.escape(doc["dump"])}; <a href="patterns.csv">CSV</a>, '
        '<a href="patterns.json">JSON</a>, <a href="../index.html">gallery'
        '</a>, <a href="../false_positives.html">false positives</a> '
        '<button id="save-names" onclick="saveNames()">Save names</button>'
        f'</p><ul>{classes}</ul>'
        f'{sections or "<p>No patterns found.</p>"}</body></html>\n'
    )


def write_mined(
    out: Path, mined: Dict[str, Any], lines: List[str], pool: Path
) -> List[Path]:
    """Write ``negatives.json``, ``negatives.txt`` (annotation file) and
    ``mined.html`` with crops of the proposed negatives into ``out``.

    Args:
        out (Path): Output folder.
        mined (dict): Result of :func:`mmcam_ext.analysis.mine_negatives`.
        lines (list[str]): The annotation lines.
        pool (Path): The pool dump (maps and image paths).

    Returns:
        list[Path]: The JSON, annotation and HTML files.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / 'negatives.json', out / 'negatives.txt', out / 'mined.html']
    paths[0].write_text(json.dumps(mined, indent=1))
    paths[1].write_text(''.join(line + '\n' for line in lines))
    rows = _Rows(CAMDump(pool), mined.get('method', ''))
    sections = []
    for pat in mined['patterns']:
        figs = []
        for rank, (idx, path) in enumerate(
            zip(pat['dataset_index'], pat['images'])
        ):
            rel = f'crops/p{pat["id"]}_{rank}.png'
            src = _save(out, rel, rows.crop(rows.get(idx, pat['cls'])))
            figs.append(_fig(src, f'{rank + 1}. {Path(path).name}'))
        sections.append(
            f'<section class="pattern" data-id="{pat["id"]}"><h2>Pattern '
            f'{pat["id"]} (class {pat["cls"]}): {len(figs)} proposed '
            f'negatives</h2><div class="row">{"".join(figs)}</div></section>'
        )
    paths[2].write_text(render_mined_page(mined, sections), encoding='utf-8')
    return paths


def render_mined_page(mined: Dict[str, Any], sections: List[str]) -> str:
    """HTML text of ``mined.html``.

    Args:
        mined (dict): The mined negatives.
        sections (list[str]): One HTML section per pattern.

    Returns:
        str: The page.
    """
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mined '
        f'negatives</title><style>{_CSS}</style></head><body><h1>Mined '
        f'negatives</h1><p>pool {html.escape(mined["pool"])}; '
        '<a href="negatives.json">JSON</a>, <a href="negatives.txt">'
        f'annotation file</a></p>{"".join(sections)}</body></html>\n'
    )


def link_patterns(dump_folder: Path) -> List[Path]:
    """Put a link to ``patterns/patterns.html`` into the dump's gallery
    and false-positive report (where they left :data:`PATTERNS_LINK`).

    Args:
        dump_folder (Path): The dump folder.

    Returns:
        list[Path]: The pages changed.
    """
    link = '<a href="patterns/patterns.html">error patterns</a>'
    changed = []
    for name in ('index.html', 'false_positives.html'):
        page = Path(dump_folder) / name
        if page.is_file():
            text = page.read_text(encoding='utf-8')
            if PATTERNS_LINK in text:
                page.write_text(
                    text.replace(PATTERNS_LINK, link), encoding='utf-8'
                )
                changed.append(page)
    return changed
