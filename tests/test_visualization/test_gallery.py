"""The HTML gallery: structure, and a real headless Chromium opening it."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mmengine.runner import Runner

from mmcam_ext.fileio import read_index
from mmcam_ext.visualization.gallery import render_gallery
from tests.helpers.runner import tiny_cfg

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_FLAGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    '--virtual-time-budget=5000',
]
# Appended to a copy of index.html: after load, count the cards, the images
# that decoded, and the cards left visible by the "misclassified only" box.
PROBE = """<script>
window.addEventListener('load', function(){
  var imgs=[].slice.call(document.images), cards=document.querySelectorAll('.card');
  var r={cards:cards.length, images:imgs.length,
         loaded:imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length,
         order:[].map.call(cards,function(c){return c.dataset.misclassified;}).join('')};
  var box=document.getElementById('only-wrong'); box.click();
  r.visible=[].filter.call(cards,function(c){return c.style.display!=='none';}).length;
  r.shown=document.getElementById('shown').textContent;
  box.click();
  var pre=document.createElement('pre'); pre.id='probe';
  pre.textContent=JSON.stringify(r); document.body.appendChild(pre);
});
</script>"""


def _row(idx, wrong, method='GradCAM'):
    return dict(
        dataset_index=idx,
        img_path=f'x/{idx}.png',
        gt=0,
        pred=1 if wrong else 0,
        score=0.5,
        misclassified=wrong,
        target_kind='pred',
        target=1 if wrong else 0,
        target_score=0.5,
        method=method,
        file=f'{idx}_{method}.png',
        raw_file='',
        input_file=f'{idx}_input.png',
        rank=0,
    )


def test_render_groups_samples_and_puts_misclassified_first():
    rows = [
        _row(0, False),
        _row(0, False, 'LayerCAM'),
        _row(1, True),
        _row(2, False),
        _row(3, True),
    ]
    page = render_gallery(rows, classes=['circle', 'square'], title='t<1>')
    order = re.findall(r'data-index="(\d+)"', page)
    assert order == ['1', '3', '0', '2']
    assert len(re.findall(r'class="card( wrong)?"', page)) == 4
    assert 't&lt;1&gt;' in page and 'square (1)' in page
    assert 'http' not in page  # nothing to fetch: opens from disk offline


def _dump(tmp_path):
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam', 'layercam'],
        target='both',
        samples=dict(mode='all'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    runner.val()
    return Path(runner.work_dir, 'cam', f'val_{runner.timestamp}')


def _chromium(args, tmp_path):
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f'--user-data-dir={tmp_path / "prof"}',
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_gallery_opens_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        subprocess.run(
            [
                'bash',
                str(
                    Path(__file__).resolve().parents[2]
                    / 'scripts'
                    / 'setup_browser.sh'
                ),
            ],
            timeout=600,
            check=False,
        )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            'chromium is not installed and scripts/setup_browser.sh '
            'could not install it (needs root and the Debian '
            'mirror).'
        )
    folder = _dump(tmp_path)
    rows = read_index(folder)
    samples = {r['dataset_index'] for r in rows}
    wrong = {r['dataset_index'] for r in rows if r['misclassified']}
    page = (folder / 'index.html').read_text()
    (folder / 'probe.html').write_text(
        page.replace('</body>', PROBE + '</body>')
    )
    res = _chromium(['--dump-dom', (folder / 'probe.html').as_uri()], tmp_path)
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout)
    assert found, f'no probe result; chromium said: {res.stderr[-2000:]}'
    probe = json.loads(found.group(1))
    assert probe['cards'] == len(samples)
    # per card: input + 2 methods x 2 targets
    assert probe['images'] == len(samples) * 5
    assert probe['loaded'] == probe['images']
    assert probe['order'] == '1' * len(wrong) + '0' * (
        len(samples) - len(wrong)
    )
    assert probe['visible'] == len(wrong) == int(probe['shown'])
    shot = tmp_path / 'gallery.png'
    _chromium(
        [
            f'--screenshot={shot}',
            '--window-size=1280,900',
            (folder / 'index.html').as_uri(),
        ],
        tmp_path,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    shutil.copy(shot, folder / 'screenshot.png')
