"""find_patterns / mine_negatives command lines, their files and pages."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmcam_ext.__main__ import main as module_main
from mmcam_ext.cli.find_patterns import main as find_main
from mmcam_ext.cli.mine_negatives import main as mine_main
from mmcam_ext.fileio import read_index
from mmcam_ext.visualization import write_gallery, write_report
from tests.helpers.fake_dump import CLASSES, make_dump
from tests.test_visualization.test_gallery import (
    _chromium,
    _chromium_or_skip,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dump(tmp_path):
    folder = tmp_path / 'dump'
    truth = make_dump(folder, shards=2)
    rows = read_index(folder)
    write_gallery(folder, rows, CLASSES)
    write_report(folder, rows, CLASSES)
    return folder, truth


def test_writes_json_csv_html_crops_and_links_the_pages(dump, capsys):
    folder, truth = dump
    assert find_main([str(folder), '--classes', 'cat']) == 0
    out = folder / 'patterns'
    doc = json.loads((out / 'patterns.json').read_text())
    assert [p['id'] for p in doc['patterns']] == [0, 1, 2]
    for p in doc['patterns']:
        assert p['size'] == len(p['samples']) == 12
        assert len({truth[i] for i in p['samples']}) == 1
    with (out / 'patterns.csv').open() as f:
        table = list(csv.DictReader(f))
    assert [int(r['size']) for r in table] == [12, 12, 12]
    assert [r['samples'].split() for r in table] == [
        [str(i) for i in p['samples']] for p in doc['patterns']
    ]
    page = (out / 'patterns.html').read_text()
    assert page.count('<section class="pattern"') == 3
    for p in doc['patterns']:
        assert (out / f'crops/p{p["id"]}_map.png').is_file()
        for i in p['typical']:
            assert (out / f'crops/p{p["id"]}_{i}.png').is_file()
    for name in ('index.html', 'false_positives.html'):
        assert 'href="patterns/patterns.html"' in (folder / name).read_text()
    assert '3 patterns' in capsys.readouterr().out


def test_crop_is_the_image_under_the_map(dump):
    import cv2

    folder, truth = dump
    assert find_main([str(folder)]) == 0
    doc = json.loads((folder / 'patterns/patterns.json').read_text())
    colours = {0: (250, 30, 30), 1: (30, 250, 30), 2: (30, 30, 250)}
    for p in doc['patterns']:
        (group,) = {truth[i] for i in p['samples']}
        crop = cv2.imread(
            str(folder / f'patterns/crops/p{p["id"]}_{p["typical"][0]}.png')
        )[..., ::-1]
        centre = crop[60:68, 60:68].reshape(-1, 3).mean(0)
        assert abs(centre - colours[group]).max() < 30, centre


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert find_main([str(tmp_path / 'missing')]) == 2
    err = capsys.readouterr().err
    assert 'does not exist' in err and err.count('\n') == 1
    make_dump(tmp_path / 'nodesc', descriptors=False)
    assert find_main([str(tmp_path / 'nodesc')]) == 2
    assert '--save-raw' in capsys.readouterr().err
    make_dump(tmp_path / 'few', groups=(2,))
    assert find_main([str(tmp_path / 'few')]) == 0
    assert 'too few' in capsys.readouterr().out


def test_mine_writes_json_annotation_and_page(dump, tmp_path, capsys):
    folder, _ = dump
    assert find_main([str(folder)]) == 0
    make_dump(tmp_path / 'pool', groups=(20, 20, 20), correct=40)
    code = mine_main(
        [
            str(folder / 'patterns'),
            str(tmp_path / 'pool'),
            '--label',
            '0',
            '--per-pattern',
            '5',
            '--patterns',
            '0',
            '2',
        ]
    )
    assert code == 0
    mined = folder / 'patterns' / 'mined'
    neg = json.loads((mined / 'negatives.json').read_text())
    assert [p['id'] for p in neg['patterns']] == [0, 2]
    assert all(len(p['images']) == 5 for p in neg['patterns'])
    lines = (mined / 'negatives.txt').read_text().splitlines()
    assert len(lines) == 10
    assert all(Path(line.rsplit(' ', 1)[0]).is_file() for line in lines)
    assert (mined / 'mined.html').read_text().count('<figure>') == 10
    # an MMPretrain CustomDataset reads the file
    from mmpretrain.datasets import CustomDataset

    ds = CustomDataset(
        ann_file=str(mined / 'negatives.txt'),
        data_prefix='',
        with_label=True,
        classes=list(CLASSES),
        lazy_init=False,
    )
    assert len(ds) == 10
    assert {int(ds.get_data_info(i)['gt_label']) for i in range(10)} == {0}
    assert {ds.get_data_info(i)['img_path'] for i in range(10)} == {
        line.rsplit(' ', 1)[0] for line in lines
    }


def test_mine_refuses_a_pool_of_another_model(dump, tmp_path, capsys):
    folder, _ = dump
    assert find_main([str(folder)]) == 0
    make_dump(tmp_path / 'pool', method='LayerCAM')
    assert mine_main([str(folder / 'patterns'), str(tmp_path / 'pool')]) == 2
    assert 'LayerCAM' in capsys.readouterr().err
    assert mine_main([str(tmp_path), str(tmp_path / 'pool')]) == 2
    assert 'run find_patterns.py' in capsys.readouterr().err


def test_module_entry_and_tool_script(dump):
    folder, _ = dump
    assert (
        module_main(['patterns', str(folder), '--out-dir', str(folder / 'p2')])
        == 0
    )
    assert (folder / 'p2' / 'patterns.json').is_file()
    res = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'find_patterns.py'), '-h'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin'},
    )
    assert res.returncode == 0 and '--max-patterns' in res.stdout


PROBE = """<script>
window.addEventListener('load', function(){
  var imgs=[].slice.call(document.querySelectorAll('section img'));
  var r={sections:document.querySelectorAll('section.pattern').length,
         images:imgs.length,
         decoded:imgs.filter(function(i){
           return i.naturalWidth===128;}).length};
  document.querySelectorAll('input.pname').forEach(function(el, k){
    el.value='name '+k;});
  // the page's download link, recorded instead of followed (a download
  // can keep headless chromium from exiting)
  HTMLAnchorElement.prototype.click=function(){
    r.download=this.download; r.blob=this.href.indexOf('blob:')===0;};
  document.getElementById('save-names').click();
  r.saved=JSON.parse(window.savedNames);
  var pre=document.createElement('pre'); pre.id='probe';
  pre.textContent=JSON.stringify(r); document.body.appendChild(pre);});
</script>"""


@pytest.mark.slow
def test_patterns_page_in_headless_chromium(dump, tmp_path):
    _chromium_or_skip()
    folder, _ = dump
    assert find_main([str(folder)]) == 0
    out = folder / 'patterns'
    page = (out / 'patterns.html').read_text()
    (out / 'probe.html').write_text(page.replace('</body>', PROBE + '</body>'))
    res = _chromium(['--dump-dom', (out / 'probe.html').as_uri()], tmp_path)
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout)
    assert found, res.stderr[-2000:]
    probe = json.loads(found.group(1))
    doc = json.loads((out / 'patterns.json').read_text())
    shown = sum(
        1 + len(p['typical']) + len(p['lookalikes']) for p in doc['patterns']
    )
    assert probe['sections'] == len(doc['patterns']) == 3
    assert probe['images'] == probe['decoded'] == shown
    assert probe['download'] == 'pattern_names.json' and probe['blob']
    assert probe['saved'] == {
        'patterns': [
            {'id': p['id'], 'name': f'name {k}'}
            for k, p in enumerate(doc['patterns'])
        ]
    }
