"""A self-contained HTML gallery of one CAM dump (``index.html``).

It must open from disk (``file://``) without a server, so it is one static
file: relative image paths, inline CSS and a few lines of inline JS for the
"misclassified only" filter; no external resources.
"""

import html
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..utils.image import class_text

__all__ = ['write_gallery', 'render_gallery']

_CSS = """
body{font-family:sans-serif;margin:12px;background:#f4f4f4}
.bar{position:sticky;top:0;background:#fff;padding:8px;z-index:1;
     border-bottom:1px solid #ccc}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.card{background:#fff;border:2px solid #8c8;border-radius:6px;padding:6px}
.card.wrong{border-color:#d44}
.card h3{margin:0 0 4px 0;font-size:13px}
.card.wrong h3{color:#b00}
.row{display:flex;gap:4px;align-items:flex-start}
figure{margin:0;text-align:center;font-size:11px}
figure img{width:128px;height:auto;image-rendering:pixelated;display:block}
"""

_JS = """
function applyFilter(){
  var only=document.getElementById('only-wrong').checked, shown=0;
  document.querySelectorAll('.card').forEach(function(c){
    var vis=!only||c.dataset.misclassified==='1';
    c.style.display=vis?'':'none'; if(vis){shown++;}
  });
  document.getElementById('shown').textContent=shown;
}
"""


def _figure(src: str, caption: str) -> str:
    src, caption = html.escape(src, quote=True), html.escape(caption)
    return (
        f'<figure><img src="{src}" alt="{caption}" loading="eager">'
        f'<figcaption>{caption}</figcaption></figure>'
    )


def _card(rows: List[Dict[str, Any]], classes: Optional[Sequence[str]]) -> str:
    """One sample: header with gt/pred/score, original, overlays."""
    first = rows[0]
    wrong = bool(first['misclassified'])
    header = (
        f'#{first["dataset_index"]} &nbsp; gt: '
        f'{html.escape(class_text(first["gt"], classes, "-"))} &nbsp; '
        f'pred: {html.escape(class_text(first["pred"], classes, "-"))} '
        f'({float(first["score"]):.3f})'
    )
    figures = [_figure(first['input_file'], 'input')]
    for row in rows:
        figures.append(
            _figure(
                row['file'],
                f'{row["method"]} · {row["target_kind"]} '
                f'{class_text(row["target"], classes, "-")}',
            )
        )
    path = html.escape(str(first.get('img_path', '')), quote=True)
    return (
        f'<div class="card{" wrong" if wrong else ""}" '
        f'data-misclassified="{int(wrong)}" '
        f'data-index="{first["dataset_index"]}" title="{path}">'
        f'<h3>{header}</h3><div class="row">{"".join(figures)}</div>'
        '</div>'
    )


def render_gallery(
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    title: str = 'CAMs',
) -> str:
    """HTML text of the gallery: one card per sample, misclassified first.

    Args:
        rows: Index rows (see ``mmcam_ext.fileio.INDEX_FIELDS``);
            rows of one sample (one per target and method) share a card.
        classes: Class names for the labels.
        title: Page title.
    """
    by_sample: Dict[int, List[Dict[str, Any]]] = {}
    for row in rows:
        by_sample.setdefault(int(row['dataset_index']), []).append(row)
    order = sorted(
        by_sample, key=lambda i: (not by_sample[i][0]['misclassified'], i)
    )
    cards = [_card(by_sample[i], classes) for i in order]
    wrong = sum(bool(by_sample[i][0]['misclassified']) for i in order)
    title = html.escape(title)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}'
        f'</title><style>{_CSS}</style><script>{_JS}</script></head><body>'
        f'<div class="bar"><b>{title}</b> &nbsp; {len(cards)} samples, '
        f'{wrong} misclassified &nbsp; <label><input type="checkbox" '
        'id="only-wrong" onchange="applyFilter()"> misclassified only'
        f'</label> &nbsp; shown: <span id="shown">{len(cards)}</span></div>'
        f'<div class="cards">{"".join(cards)}</div></body></html>\n'
    )


def write_gallery(
    folder: Path,
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    title: str = 'CAMs',
) -> Path:
    """Write ``<folder>/index.html``; image paths in ``rows`` are relative
    to ``folder``, so the page opens from disk and survives moving it."""
    path = Path(folder) / 'index.html'
    path.write_text(render_gallery(rows, classes, title), encoding='utf-8')
    return path
