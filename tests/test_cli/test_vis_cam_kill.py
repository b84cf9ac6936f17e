"""``tools/vis_cam.py --save-raw`` on a folder, killed with SIGKILL mid-way:
every image it committed reads back, equal to a recomputation; the dump
says it is partial and which images are missing; ``dump finish`` writes
its index."""

import json
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest

from mmcam_ext.__main__ import main as cli_main
from mmcam_ext.apis import CAMInferencer
from mmcam_ext.fileio import CAMDump, PartialDumpWarning
from mmcam_ext.utils.model import model_fingerprint
from tests.helpers import kill_run

pytestmark = pytest.mark.slow

TOOL = str(Path(__file__).resolve().parents[2] / 'tools' / 'vis_cam.py')
IMAGES = 150


@pytest.fixture(scope='module')
def folder_of_images(tmp_path_factory):
    root = tmp_path_factory.mktemp('many')
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        img = rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)
        mmcv.imwrite(img, str(root / f'img{i:03d}.png'))
    return root


@pytest.mark.parametrize('kill_after', [2, 25])
def test_killed_tool_keeps_every_committed_image(
    small_setup, folder_of_images, tmp_path, kill_after
):
    out = tmp_path / 'out'
    cmd = [sys.executable, TOOL, str(folder_of_images), small_setup['config']]
    cmd += [small_setup['ckpt'], '--save-raw', '--out-dir', str(out)]
    cmd += ['--batch-size', '1', '--method', 'gradcam', 'layercam']
    proc = kill_run.popen(cmd, tmp_path)
    raw = out / 'raw'
    try:
        kill_run.wait_for_rows(
            lambda: raw if raw.is_dir() else None, 2 * kill_after, proc
        )
        kill_run.kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read() if proc.stdout else ''
    assert 'MultiScaleDeformableAttention' not in output
    with pytest.warns(PartialDumpWarning, match='dump finish'):
        dump = CAMDump(raw)
    done = {r['dataset_index'] for r in dump.rows}
    assert kill_after <= len(done) < IMAGES
    assert sorted(done | set(dump.missing)) == list(range(IMAGES))
    paths = {r['dataset_index']: r['img_path'] for r in dump.rows}
    order = sorted(paths)
    inferencer = CAMInferencer(small_setup['config'], small_setup['ckpt'])
    results = inferencer(
        [paths[i] for i in order], ['gradcam', 'layercam'], batch_size=1
    )
    want = dict(zip(order, results))
    for row, cam in dump:
        res = want[row['dataset_index']]
        assert Path(res['img_path']).name == Path(row['img_path']).name
        assert row['target'] == int(res['targets'][0])
        np.testing.assert_allclose(
            cam, res['maps'][row['method']][0], atol=2e-3
        )
    # the descriptors of those rows are there too
    assert all(r['desc_file'] for r in dump.rows)

    assert cli_main(['dump', 'finish', str(raw)]) == 0
    index = json.loads((raw / 'index.json').read_text())
    assert index['tool'] == 'vis_cam' and index['partial'] is True
    assert index['model_fingerprint'] == model_fingerprint(inferencer.model)
    assert index['target_layers'] == results[0]['target_layers']
    assert {r['dataset_index'] for r in index['rows']} == done
    assert index['missing'] == dump.missing
