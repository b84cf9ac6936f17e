"""A test run with the hook, killed with SIGKILL mid-way (as the OOM killer
or a preempted node does), keeps every map it committed: the reader gives
each committed row, equal to a recomputation, says the dump is partial and
which samples are missing; ``dump finish`` writes index, gallery and
report. The same under 2 gloo processes with one rank killed."""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext import CAMEngine
from mmcam_ext.__main__ import main as cli_main
from mmcam_ext.fileio import CAMDump, PartialDumpWarning
from tests.helpers import kill_run
from tests.helpers.dist_run import torchrun_cmd
from tests.helpers.runner import tiny_cfg

pytestmark = pytest.mark.slow

HOOK = dict(
    type='CAMVisualizationHook',
    methods=['gradcam'],
    samples=dict(mode='all', max_per_eval=None),
    output=dict(save_raw=True, save_images=False),
)
PER_CLASS = 40  # 3 classes: 120 test samples, 24 batches of 5
SCRIPT = kill_run.__file__


def _killable_cfg(tmp_path, seconds=0.15):
    """A config, its model's weights saved and loaded by the run."""
    cfg = tiny_cfg(tmp_path, per_class=PER_CLASS, hook=HOOK)
    runner = Runner.from_cfg(cfg.copy())
    ckpt = tmp_path / 'weights.pth'
    torch.save({'state_dict': runner.model.state_dict()}, ckpt)
    cfg.load_from = str(ckpt)
    cfg.custom_imports = dict(
        imports=['mmcam_ext', 'tests.helpers.kill_run'],
        allow_failed_imports=False,
    )
    cfg.custom_hooks = [HOOK, dict(type='SlowIterHook', seconds=seconds)]
    cfg_file = tmp_path / 'killable.py'
    cfg.dump(str(cfg_file))
    return cfg, cfg_file, runner


def _dump_folder(work_dir):
    def find():
        found = sorted(Path(work_dir, 'cam').glob('test_*'))
        return found[0] if found else None

    return find


def _recomputed(runner):
    """Predicted-class Grad-CAM of every test sample, by the engine's
    general path (its own forward) on the same weights."""
    model = runner.model.eval()
    engine = CAMEngine(model, fast_path=False)
    maps, preds = {}, {}
    for batch in runner.test_dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        res = engine.explain(inputs, ['gradcam'])
        for j, sample in enumerate(batch['data_samples']):
            maps[sample.sample_idx] = res.maps['GradCAM'][j, 0]
            preds[sample.sample_idx] = int(res.targets[j, 0])
    return maps, preds


def _check_against(dump, maps, preds):
    for row, cam in dump:
        i = row['dataset_index']
        assert row['target'] == preds[i] == row['pred']
        np.testing.assert_allclose(cam, maps[i], atol=2e-3)


@pytest.mark.parametrize('kill_after', [2, 45])
def test_killed_test_run_keeps_every_committed_row(tmp_path, kill_after):
    cfg, cfg_file, runner = _killable_cfg(tmp_path)
    proc = kill_run.popen([sys.executable, SCRIPT, str(cfg_file)], tmp_path)
    try:
        folder = kill_run.wait_for_rows(
            _dump_folder(cfg.work_dir), kill_after, proc
        )
        kill_run.kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (folder / 'index.json').exists()
    with pytest.warns(PartialDumpWarning, match='dump finish'):
        dump = CAMDump(folder)
    done = {r['dataset_index'] for r in dump.rows}
    total = 3 * PER_CLASS
    assert dump.partial and kill_after <= len(done) < total
    assert sorted(done | set(dump.missing)) == list(range(total))
    assert not done & set(dump.missing)
    maps, preds = _recomputed(runner)
    _check_against(dump, maps, preds)
    assert dump.meta['methods'] == ['GradCAM']

    assert cli_main(['dump', 'finish', str(folder)]) == 0
    index = json.loads((folder / 'index.json').read_text())
    assert {r['dataset_index'] for r in index['rows']} == done
    assert index['missing'] == dump.missing
    assert (folder / 'index.html').is_file()
    assert (folder / 'false_positives.html').is_file()
    with pytest.warns(PartialDumpWarning, match='finished after'):
        _check_against(CAMDump(folder), maps, preds)


def test_rank_killed_leaves_every_shard_readable(tmp_path):
    cfg, cfg_file, runner = _killable_cfg(tmp_path, seconds=0.3)
    cmd = torchrun_cmd(SCRIPT, cfg_file)
    proc = kill_run.popen(cmd, tmp_path, dist=True)
    try:
        find = _dump_folder(cfg.work_dir)
        for name in ('index.rank0.sqlite', 'index.rank1.sqlite'):
            folder = kill_run.wait_for_rows(find, 3, proc, name=name)
        pid = int(Path(cfg.work_dir, 'pid.rank1').read_text())
        os.kill(pid, signal.SIGKILL)  # one rank dies; torchrun ends the run
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (folder / 'index.json').exists()
    maps, preds = _recomputed(runner)
    seen = []
    for rank in (0, 1):
        with pytest.warns(PartialDumpWarning):
            shard = CAMDump(folder, rank=rank)
        assert shard.rows and {r['rank'] for r in shard.rows} == {rank}
        _check_against(shard, maps, preds)
        seen.append({r['dataset_index'] for r in shard.rows})
    with pytest.warns(PartialDumpWarning):
        both = CAMDump(folder)
    assert {r['dataset_index'] for r in both.rows} == seen[0] | seen[1]
    assert set(both.missing).isdisjoint(seen[0] | seen[1])
    assert cli_main(['dump', 'finish', str(folder)]) == 0
