"""Under ``torchrun`` (2 gloo processes on CPU): the cap selects exactly the
samples one process would, and the hook guide's command works as written."""

import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.runner import Runner

from mmcam_ext.fileio import CAMDump, read_index
from tests.helpers.dist_run import free_port, run_in, torchrun
from tests.helpers.runner import tiny_cfg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def _indices(work_dir):
    (folder,) = Path(work_dir, 'cam').glob('val_*')
    return [r['dataset_index'] for r in read_index(folder)], folder


@pytest.mark.parametrize(
    'arch, samples',
    [
        ('cnn', dict(mode='all', max_per_eval=5)),
        ('cnn', dict(mode='random', num=9, seed=1, max_per_eval=4)),
        ('cnn', dict(mode='all', misclassified_only=True, max_per_eval=3)),
        ('vit', dict(mode='all', max_per_eval=5)),  # in-loop gradients
    ],
)
def test_cap_selects_what_one_process_would(tmp_path, arch, samples):
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        samples=samples,
        output=dict(save_raw=True),
    )
    cfg = tiny_cfg(tmp_path, arch=arch, hook=hook)
    single = Runner.from_cfg(cfg.copy())
    single.val()
    want, single_folder = _indices(single.work_dir)
    cfg.work_dir = str(tmp_path / 'dist')
    torchrun(cfg, tmp_path)
    got, folder = _indices(cfg.work_dir)
    dist_maps = {
        (r['dataset_index'], r['method']): m for r, m in CAMDump(folder)
    }
    for row, cam in CAMDump(single_folder):
        key = (row['dataset_index'], row['method'])
        np.testing.assert_allclose(dist_maps[key], cam, atol=1e-3)
    assert len(want) == samples['max_per_eval']
    assert sorted(got) == sorted(want)
    # nothing was written for the candidates dropped by the cut
    files = [p.name for p in folder.glob('*_input.png')]
    assert sorted(files) == sorted(f'{i:06d}_input.png' for i in want)
    rows = read_index(folder)
    maps = {r['raw_file'] for r in rows}
    assert all(m.endswith(('.rank0.npy', '.rank1.npy')) for m in maps)


def _guide_command():
    """The CPU torchrun command of the hook guide."""
    text = (REPO / 'docs' / 'user_guides' / 'hook.md').read_text()
    (line,) = re.findall(
        r'^torchrun --nproc_per_node=2 tools/dist_launch\.py.*$', text, re.M
    )
    return line.split()


def test_guide_torchrun_command_works_as_written(tmp_path):
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        samples=dict(mode='all', max_per_eval=None),
    )
    cfg = tiny_cfg(tmp_path, hook=hook)
    runner = Runner.from_cfg(cfg.copy())
    ckpt = tmp_path / 'model.pth'
    import torch

    torch.save({'state_dict': runner.model.state_dict()}, ckpt)
    cfg_file = tmp_path / 'tiny_config.py'
    cfg.dump(str(cfg_file))
    words = _guide_command()
    assert words[:4] == [
        'torchrun',
        '--nproc_per_node=2',
        'tools/dist_launch.py',
        'test',
    ]
    # The guide's placeholders and paths, filled in; `torchrun` is
    # `python -m torch.distributed.run` with a free port.
    fill = {'CONFIG': str(cfg_file), 'CHECKPOINT': str(ckpt)}
    args = [fill.get(w, w) for w in words[3:]]
    cmd = [
        'python',
        '-m',
        'torch.distributed.run',
        '--nproc_per_node=2',
        f'--master_port={free_port()}',
        str(REPO / 'tools' / 'dist_launch.py'),
        *args,
    ]
    import sys

    cmd[0] = sys.executable
    res = run_in(cmd, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    work_dir = tmp_path / args[args.index('--work-dir') + 1]
    (folder,) = Path(work_dir, 'cam').glob('test_*')
    rows = read_index(folder)
    assert sorted(r['dataset_index'] for r in rows) == list(range(12))
    assert {r['rank'] for r in rows} == {0, 1}
    assert not (REPO / '.dist_test').exists()
