"""The HTML gallery of one CAM dump (``index.html``), usable at 10,000s.

It opens from disk (``file://``) without a server: one static page, inline
CSS and JS, and the rows as a ``gallery_data.js`` script next to it (a
``<script src>`` loads from disk where ``fetch`` of a JSON file would be
refused). Only one page of cards is in the DOM at a time; each card shows
thumbnail tiles cut from the dump's sprite sheets (CSS
``background-position``), so a page costs a few sheet images however large
the evaluation. Filters (misclassified only, ground-truth class, predicted
class, method, blank maps, text on path/index) and the page switch re-render
only the current page. A tile links to the full-size PNG when per-sample
PNGs were written.
"""

import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..fileio.thumbs import SHEET_COLS, TILE_SIZE, parse_thumb

__all__ = [
    'write_gallery',
    'render_gallery',
    'gallery_data',
    'PAGE_SIZE',
    'PATTERNS_LINK',
]

#: Where ``find_patterns`` puts its link (``link_patterns``) once the
#: dump's error patterns exist.
PATTERNS_LINK = '<!--patterns-link-->'

#: Cards per page.
PAGE_SIZE = 48
DATA_FILE = 'gallery_data.js'

_CSS = """
body{font-family:sans-serif;margin:12px;background:#f4f4f4}
.bar{position:sticky;top:0;background:#fff;padding:8px;z-index:1;
     border-bottom:1px solid #ccc;display:flex;flex-wrap:wrap;gap:10px;
     align-items:center}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.card{background:#fff;border:2px solid #8c8;border-radius:6px;padding:6px}
.card.wrong{border-color:#d44}
.card h3{margin:0 0 4px 0;font-size:12px}
.card.wrong h3{color:#b00}
.row{display:flex;gap:4px;align-items:flex-start}
figure{margin:0;text-align:center;font-size:10px;max-width:96px}
.tile{display:block;background-repeat:no-repeat;margin:auto}
figure img{display:block;margin:auto}
.blank{outline:2px dashed #e90}
"""

# Renders one page of the filtered samples; everything else is data.
_JS = r"""
var G = {page: 0, rows: []};
function el(tag, cls, text){var e=document.createElement(tag);
  if(cls){e.className=cls;} if(text!==undefined){e.textContent=text;} return e;}
function label(c){var n=DATA.classes; return c===null?'-':
  ((n&&c<n.length)?n[c]+' ('+c+')':String(c));}
function tile(ref, file, caption, blank){
  var f=el('figure'), s=DATA.size, box;
  if(ref){var t=ref[1], cols=DATA.cols;
    box=el('span','tile'); box.style.width=s+'px'; box.style.height=s+'px';
    box.style.backgroundImage='url("'+DATA.sheets[ref[0]]+'")';
    box.style.backgroundPosition=(-(t%cols)*s)+'px '+(-Math.floor(t/cols)*s)+'px';
  } else if(file){box=el('img'); box.src=file; box.loading='lazy'; box.width=s;}
  else {box=el('span','tile'); box.style.width=s+'px'; box.style.height=s+'px';}
  if(blank){box.className+=' blank';}
  if(file){var a=el('a'); a.href=file; a.appendChild(box); box=a;}
  f.appendChild(box); f.appendChild(el('figcaption','',caption)); return f;}
function matches(r){
  var q=document.getElementById('q').value.trim().toLowerCase();
  var gt=document.getElementById('gt').value, pr=document.getElementById('pred').value;
  if(document.getElementById('only-wrong').checked && !r.w){return false;}
  if(document.getElementById('only-blank').checked && !r.b){return false;}
  if(gt!=='' && String(r.gt)!==gt){return false;}
  if(pr!=='' && String(r.pred)!==pr){return false;}
  if(q && String(r.i)!==q && r.p.toLowerCase().indexOf(q)<0){return false;}
  return true;}
function applyFilter(){G.rows=DATA.samples.filter(matches); G.page=0; render();}
function go(d){var n=pages(); G.page=Math.max(0, Math.min(n-1, G.page+d)); render();}
function pages(){return Math.max(1, Math.ceil(G.rows.length/DATA.pageSize));}
function render(){
  var t0=performance.now(), box=document.getElementById('cards');
  var method=document.getElementById('method').value;
  box.textContent='';
  var rows=G.rows.slice(G.page*DATA.pageSize, (G.page+1)*DATA.pageSize);
  rows.forEach(function(r){
    var c=el('div','card'+(r.w?' wrong':'')); c.dataset.index=r.i;
    c.dataset.misclassified=r.w?'1':'0'; c.title=r.p;
    c.appendChild(el('h3','','#'+r.i+'  gt: '+label(r.gt)+'  pred: '+
      label(r.pred)+' ('+r.s.toFixed(3)+')'));
    var row=el('div','row');
    row.appendChild(tile(r.in, r.if, 'input', false));
    DATA.panels.forEach(function(p, k){
      if(method!=='' && p.method!==method){return;}
      var m=r.m[k]; if(!m){return;}
      row.appendChild(tile(m[0], m[1], p.method+' · '+p.kind+' '+label(m[2]), m[3]));});
    c.appendChild(row); box.appendChild(c);});
  document.getElementById('shown').textContent=G.rows.length;
  document.getElementById('pageno').textContent=(G.page+1)+' / '+pages();
  G.lastRenderMs=performance.now()-t0;}
function options(id, values, text){var s=document.getElementById(id);
  values.forEach(function(v){var o=el('option','',text(v)); o.value=v; s.appendChild(o);});}
window.addEventListener('DOMContentLoaded', function(){
  var gts={}, preds={};
  DATA.samples.forEach(function(r){if(r.gt!==null){gts[r.gt]=1;} preds[r.pred]=1;});
  var num=function(o){return Object.keys(o).map(Number).sort(function(a,b){return a-b;});};
  options('gt', num(gts), label); options('pred', num(preds), label);
  var ms={}; DATA.panels.forEach(function(p){ms[p.method]=1;});
  options('method', Object.keys(ms), function(v){return v;});
  G.rows=DATA.samples.slice(); render();
  window.firstRenderMs=performance.now();});
"""


def _sample_key(row: Dict[str, Any]) -> Tuple[bool, int]:
    return (not row['misclassified'], int(row['dataset_index']))


def gallery_data(
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    page_size: int = PAGE_SIZE,
) -> Dict[str, Any]:
    """The gallery's data: one compact record per sample, misclassified
    first, then dataset index.

    Args:
        rows (Sequence[dict]): Index rows (``mmcam_ext.fileio.INDEX_FIELDS``).
        classes (Sequence[str], optional): Class names. Defaults to None.
        page_size (int): Cards per page. Defaults to :data:`PAGE_SIZE`.

    Returns:
        dict: ``samples``, ``panels`` (method, target kind), ``sheets``,
        tile geometry and ``classes``.
    """
    panels: List[Tuple[str, str]] = []
    sheets: Dict[str, int] = {}
    by_sample: Dict[int, List[Dict[str, Any]]] = {}
    for row in rows:
        by_sample.setdefault(int(row['dataset_index']), []).append(row)
        panel = (row['method'], row['target_kind'])
        if panel not in panels:
            panels.append(panel)

    def ref(value: str) -> Optional[List[int]]:
        if not value:
            return None
        file, tile = parse_thumb(value)
        return [sheets.setdefault(file, len(sheets)), tile]

    samples = []
    for idx in sorted(by_sample, key=lambda i: _sample_key(by_sample[i][0])):
        group = by_sample[idx]
        first = group[0]
        cells: List[Optional[list]] = [None] * len(panels)
        for row in group:
            k = panels.index((row['method'], row['target_kind']))
            cells[k] = [
                ref(row.get('thumb', '')),
                row.get('file', ''),
                row['target'],
                bool(row.get('blank', False)),
            ]
        samples.append(
            dict(
                i=idx,
                gt=first['gt'],
                pred=first['pred'],
                s=float(first['score']),
                w=bool(first['misclassified']),
                b=any(bool(r.get('blank', False)) for r in group),
                p=str(first.get('img_path', '') or ''),
                m=cells,
                **{'in': ref(first.get('input_thumb', ''))},
                **{'if': first.get('input_file', '')},
            )
        )
    return dict(
        samples=samples,
        panels=[dict(method=m, kind=k) for m, k in panels],
        sheets=sorted(sheets, key=sheets.__getitem__),
        size=TILE_SIZE,
        cols=SHEET_COLS,
        pageSize=page_size,
        classes=list(classes) if classes is not None else None,
    )


def render_gallery(
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    title: str = 'CAMs',
) -> str:
    """HTML text of the gallery page (data in :data:`DATA_FILE`).

    Args:
        rows (Sequence[dict]): Index rows.
        classes (Sequence[str], optional): Class names for the labels.
            Defaults to None.
        title (str): Page title. Defaults to ``'CAMs'``.

    Returns:
        str: The page.
    """
    wrong = len({r['dataset_index'] for r in rows if r['misclassified']})
    total = len({r['dataset_index'] for r in rows})
    title = html.escape(title)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}'
        f'</title><style>{_CSS}</style><script src="{DATA_FILE}"></script>'
        f'<script>{_JS}</script></head><body><div class="bar"><b>{title}'
        f'</b><span>{total} samples, {wrong} misclassified</span>'
        '<label><input type="checkbox" id="only-wrong" '
        'onchange="applyFilter()"> misclassified only</label>'
        '<label><input type="checkbox" id="only-blank" '
        'onchange="applyFilter()"> blank maps</label>'
        '<label>gt <select id="gt" onchange="applyFilter()"><option value="">'
        'any</option></select></label>'
        '<label>pred <select id="pred" onchange="applyFilter()"><option '
        'value="">any</option></select></label>'
        '<label>method <select id="method" onchange="render()"><option '
        'value="">all</option></select></label>'
        '<input id="q" placeholder="index or path" '
        'oninput="applyFilter()"><span>shown: <b id="shown">0</b></span>'
        '<button id="prev" onclick="go(-1)">&lt;</button>'
        '<span id="pageno"></span>'
        '<button id="next" onclick="go(1)">&gt;</button>'
        '<a href="false_positives.html">false positives</a>'
        f'{PATTERNS_LINK}</div>'
        '<div id="cards" class="cards"></div></body></html>\n'
    )


def write_gallery(
    folder: Path,
    rows: Sequence[Dict[str, Any]],
    classes: Optional[Sequence[str]] = None,
    title: str = 'CAMs',
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write ``index.html`` and its data file into ``folder``.

    Image paths in ``rows`` are relative to ``folder``, so the page opens
    from disk and survives moving the folder.

    Args:
        folder (Path): The dump folder.
        rows (Sequence[dict]): Index rows.
        classes (Sequence[str], optional): Class names. Defaults to None.
        title (str): Page title. Defaults to ``'CAMs'``.
        page_size (int): Cards per page. Defaults to :data:`PAGE_SIZE`.

    Returns:
        Path: ``index.html``.
    """
    folder = Path(folder)
    data = gallery_data(rows, classes, page_size)
    (folder / DATA_FILE).write_text(
        'var DATA = ' + json.dumps(data, separators=(',', ':')) + ';\n',
        encoding='utf-8',
    )
    path = folder / 'index.html'
    path.write_text(render_gallery(rows, classes, title), encoding='utf-8')
    return path
