"""The hook through MMPretrain's own ``tools/train.py`` and ``tools/test.py``.

As a user runs them: the scripts shipped in MMPretrain's package
(``mmpretrain/.mim/tools``), in fresh processes, on a config file that adds
only ``custom_imports`` and the hook. ``tools/test.py`` then loads the
Runner checkpoint that ``tools/train.py`` saved, which under torch >= 2.6
(``weights_only=True``) works only because importing mmcam_ext allow-lists
its types; the dump's maps are read back with the public reader.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmcam_ext.fileio import load_cams, read_index
from tests.helpers.runner import tiny_cfg

pytestmark = pytest.mark.slow

HOOK = dict(
    type='CAMVisualizationHook',
    methods=['gradcam', 'layercam'],
    target='both',
    samples=dict(mode='all', max_per_eval=None),
    output=dict(save_raw=True),
)


def _mmpretrain_tool(name: str) -> str:
    import mmpretrain

    path = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / name
    assert path.is_file(), path
    return str(path)


def _run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND='Agg')
    proc = subprocess.run(
        [sys.executable, _mmpretrain_tool(tool), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _dump_folders(work_dir: Path, prefix: str):
    return sorted(
        p for p in (work_dir / 'cam').glob(f'{prefix}*') if p.is_dir()
    )


def _dump(cfg, path: Path) -> None:
    # As the shapes configs come (persistent_workers=False for loaders in
    # the main process: MMPretrain's tools default to persistent workers).
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].persistent_workers is False
    cfg.dump(str(path))


def test_train_then_test_with_mmpretrain_tools(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=2, hook=HOOK)
    cfg_file = tmp_path / 'shapes_cnn_cam.py'
    _dump(cfg, cfg_file)
    work_dir = tmp_path / 'work'

    _run('train.py', str(cfg_file), '--work-dir', str(work_dir), cwd=tmp_path)
    val_dumps = _dump_folders(work_dir, 'val_epoch_')
    assert [p.name for p in val_dumps] == ['val_epoch_1', 'val_epoch_2']
    ckpt = work_dir / 'epoch_2.pth'
    assert ckpt.is_file()

    test_dir = tmp_path / 'test'
    _run(
        'test.py',
        str(cfg_file),
        str(ckpt),
        '--work-dir',
        str(test_dir),
        cwd=tmp_path,
    )
    (test_dump,) = _dump_folders(test_dir, 'test_')
    rows = read_index(test_dump)
    n_val = cfg.shapes_data.val_per_class * 3
    # Every sample x 2 targets x 2 methods, each once.
    keys = {
        (int(r['dataset_index']), r['target_kind'], r['method']) for r in rows
    }
    assert len(keys) == len(rows) == n_val * 2 * 2
    assert {k[0] for k in keys} == set(range(n_val))
    pairs = load_cams(test_dump, method='GradCAM', target='gt')
    assert len(pairs) == n_val
    for _, cam in pairs:
        assert cam.shape == (32, 32)
        assert np.isfinite(cam).all()
        assert 0.0 <= cam.min() and cam.max() <= 1.0
    # The test run's metrics are those of the checkpoint, untouched by the
    # hook: the same checkpoint tested without the hook gives the same.
    plain_cfg = tiny_cfg(tmp_path, epochs=2, hook=None)
    plain_file = tmp_path / 'shapes_cnn_plain.py'
    _dump(plain_cfg, plain_file)
    _run(
        'test.py',
        str(plain_file),
        str(ckpt),
        '--work-dir',
        str(tmp_path / 'plain'),
        cwd=tmp_path,
    )
    assert _top1(test_dir) == _top1(tmp_path / 'plain')
    assert not _dump_folders(tmp_path / 'plain', 'test_')


def _top1(work_dir: Path) -> float:
    """``accuracy/top1`` of the one test run logged under ``work_dir``.

    The shapes configs log at WARNING, so the metrics are read from the
    run's JSON scalars (``<work_dir>/<timestamp>/<timestamp>.json``).
    """
    (log,) = work_dir.glob('*/*.json')
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    (top1,) = [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r]
    return top1
