"""The grids reach every vis backend: Local (a file), TensorBoard (read
back), W&B-style (MMEngine's WandbVisBackend on a stand-in ``wandb``)."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from mmengine.runner import Runner

from tests.helpers.runner import tiny_cfg

HOOK = dict(
    type='CAMVisualizationHook',
    methods=['gradcam', 'layercam'],
    samples=dict(mode='first', num=3),
)


def test_local_backend_writes_one_file_per_grid(tmp_path):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, epochs=1, hook=HOOK))
    runner.train()
    folder = Path(runner.log_dir, 'vis_data', 'vis_image')
    files = sorted(p.name for p in folder.glob('cam_*.png'))
    assert files == [f'cam_val_{i:06d}_pred_1.png' for i in range(3)]
    import cv2

    grid = cv2.imread(str(folder / files[0]))
    assert grid.shape[1] > 3 * 32  # input + 2 overlays, upscaled


def test_tensorboard_receives_the_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    runner = Runner.from_cfg(
        tiny_cfg(tmp_path, epochs=1, hook=HOOK, tensorboard=True)
    )
    runner.train()
    events = list(Path(runner.log_dir).rglob('events.out.tfevents*'))
    assert events, 'no TensorBoard event file'
    acc = EventAccumulator(str(events[0].parent), size_guidance={'images': 0})
    acc.Reload()
    tags = sorted(t for t in acc.Tags()['images'] if t.startswith('cam_val'))
    assert tags == [f'cam_val_{i:06d}_pred' for i in range(3)]
    image = acc.Images(tags[0])[0]
    assert image.step == 1 and image.width > 32 * 3
    assert image.encoded_image_string[:4] == b'\x89PNG'


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in ``wandb`` module recording what is logged."""
    logged = []
    module = types.ModuleType('wandb')
    module.init = lambda **kw: None
    module.define_metric = lambda *a, **kw: None
    module.Image = lambda array: ('image', np.asarray(array))
    module.log = lambda data, commit=None: logged.append(data)
    module.join = lambda: None
    module.finish = lambda: None
    module.config = types.SimpleNamespace(update=lambda *a, **kw: None)
    module.run = types.SimpleNamespace(log_code=lambda *a, **kw: None)
    monkeypatch.setitem(sys.modules, 'wandb', module)
    return logged


def test_wandb_style_backend_receives_the_grids(tmp_path, fake_wandb):
    cfg = tiny_cfg(tmp_path, hook=dict(HOOK, target='both'))
    cfg.visualizer.vis_backends = [dict(type='WandbVisBackend')]
    Runner.from_cfg(cfg).val()
    images = {
        k: v[1]
        for d in fake_wandb
        for k, v in d.items()
        if k.startswith('cam_')
    }
    assert sorted(images) == [
        f'cam_val_{i:06d}_{kind}' for i in range(3) for kind in ('gt', 'pred')
    ]
    assert all(v.ndim == 3 and v.shape[2] == 3 for v in images.values())


def test_backend_samples_caps_the_grids(tmp_path):
    hook = dict(HOOK, samples=dict(mode='all'), output=dict(backend_samples=2))
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    runner.val()
    folder = Path(runner.log_dir, 'vis_data', 'vis_image')
    assert sorted(p.name for p in folder.glob('cam_*.png')) == [
        'cam_val_000000_pred_0.png',
        'cam_val_000001_pred_0.png',
    ]


def test_no_backends_no_grids_drawn(tmp_path, monkeypatch):
    from mmcam_ext.visualization import CAMVisualizer

    calls = []
    monkeypatch.setattr(
        CAMVisualizer,
        'draw_cam',
        lambda self, *a, **kw: calls.append(1) or np.zeros((2, 2, 3)),
    )
    cfg = tiny_cfg(tmp_path, hook=dict(HOOK, samples=dict(mode='all')))
    cfg.visualizer.vis_backends = []
    Runner.from_cfg(cfg).val()
    assert calls == []
