"""Explaining a whole test set: the hook and the tool at scale.

Rows:

(a) ``Runner.test()`` with :class:`CAMVisualizationHook` explaining every
    sample (GradCAM, raw map store, per-sample PNGs off) divided by the same
    test run without the hook: two Runners on the same weights and data,
    ``test()`` timed alternately;
(b) the same with ``misclassified_only`` on a trained tiny shapes model;
(c) ``tools/vis_cam.py`` on a folder, in a fresh process, divided by
    MMPretrain's ``ImageClassificationInferencer`` on the same folder, also
    in a fresh process (both include start-up and model loading);
(d) files written per evaluation, with per-sample PNGs off and on.
"""

import glob
import os.path as osp
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

from .folder import REPO_ROOT, our_tool_cmd, save_random_checkpoint
from .timing import interleaved_medians

__all__ = [
    'ScaleCase',
    'hook_test_ratio',
    'trained_hook_ratio',
    'folder_vs_inferencer',
    'INFERENCER_SCRIPT',
]

#: What MMPretrain users run for plain inference on a folder.
INFERENCER_SCRIPT = """
import glob, os.path as osp, sys
from mmpretrain import ImageClassificationInferencer
config, ckpt, folder, batch, device = sys.argv[1:6]
inferencer = ImageClassificationInferencer(
    config, pretrained=ckpt, device=device
)
images = sorted(glob.glob(osp.join(folder, '*.jpg')))
results = inferencer(images, batch_size=int(batch))
assert len(results) == len(images)
"""


@dataclass(frozen=True)
class ScaleCase:
    """A test set explained by the hook.

    Args:
        config: ``mmpretrain.get_model`` name whose ``model`` is used (head
            resized to the 3 shape classes, random weights).
        size: Side of the generated test images.
        num: Test images (at least; rounded up to a multiple of 3).
        batch: Test batch size.
    """

    config: str = 'resnet50_8xb32_in1k'
    size: int = 224
    num: int = 128
    batch: int = 16


def _hook(misclassified_only: bool = False, save_images: bool = False):
    return dict(
        type='CAMVisualizationHook',
        methods=['GradCAM'],
        samples=dict(
            mode='all',
            max_per_eval=None,
            misclassified_only=misclassified_only,
        ),
        output=dict(save_raw=True, save_images=save_images),
        phases='test',
    )


def _test_cfg(case: ScaleCase, root: str, name: str, hook: Optional[dict]):
    from mmpretrain import get_model

    from .datasets.shapes_train import prepare_shapes_data, shapes_config

    data_root = osp.join(root, 'data')
    cfg = shapes_config('cnn', data_root, epochs=1)
    cfg.shapes_data.train_per_class = 1
    cfg.shapes_data.val_per_class = -(-case.num // 3)
    prepare_shapes_data(data_root, cfg, (case.size, case.size), seed=0)
    model_cfg = get_model(case.config, pretrained=False)._config.model
    model_cfg.head.num_classes = 3
    model_cfg.pop('data_preprocessor', None)
    model_cfg.pop('train_cfg', None)  # batch augments: training only
    cfg.model = model_cfg
    cfg.test_dataloader.batch_size = case.batch
    return _named(cfg, root, name, hook)


def _named(cfg, root: str, name: str, hook: Optional[dict]):
    cfg = cfg.copy()
    cfg.work_dir = osp.join(root, name)
    cfg.experiment_name = f'scale_{name}_{id(cfg)}'
    cfg.custom_hooks = [hook] if hook else []
    cfg.visualizer = dict(
        type='CAMVisualizer', name=f'vis_{name}_{id(cfg)}', vis_backends=[]
    )
    cfg.log_level = 'WARNING'
    return cfg


def _last_dump(runner):
    from mmcam_ext.fileio import dump_files, read_index

    folders = sorted(Path(runner.work_dir, 'cam').iterdir())
    rows = read_index(folders[-1])
    return len({r['dataset_index'] for r in rows}), len(
        dump_files(folders[-1])
    )


def _ratio(with_hook, without, repeats: int) -> Dict[str, float]:
    times = interleaved_medians(
        {'with': with_hook.test, 'without': without.test},
        repeats=repeats,
        warmup=1,
    )
    explained, files = _last_dump(with_hook)
    return dict(
        times,
        ratio=times['with'] / times['without'],
        explained=explained,
        files=files,
    )


def hook_test_ratio(
    case: ScaleCase, repeats: int = 3, root: Optional[str] = None
) -> Dict[str, float]:
    """Row (a) and (d): test run with the hook explaining every sample
    divided by the run without it; files of one evaluation.

    Returns:
        dict: ``with``, ``without`` (median s), ``ratio``, ``explained``,
        ``samples``, ``files`` (PNGs off) and ``files_png`` (PNGs on).
    """
    from mmengine.runner import Runner

    with tempfile.TemporaryDirectory(dir=root) as tmp:
        torch.manual_seed(0)
        with_hook = Runner.from_cfg(_test_cfg(case, tmp, 'with', _hook()))
        without = Runner.from_cfg(_test_cfg(case, tmp, 'without', None))
        state = with_hook.model.state_dict()
        without.model.load_state_dict(state)
        out = _ratio(with_hook, without, repeats)
        png = Runner.from_cfg(
            _test_cfg(case, tmp, 'png', _hook(save_images=True))
        )
        png.model.load_state_dict(state)
        png.test()
        out['files_png'] = _last_dump(png)[1]
        out['samples'] = len(with_hook.test_dataloader.dataset)
    return out


def trained_hook_ratio(
    cfg, repeats: int = 3, root: Optional[str] = None
) -> Dict[str, float]:
    """Row (b): ``misclassified_only`` on a trained model's test split.

    Args:
        cfg: The trained shapes config (``load_from`` set).
        repeats: Timed rounds.
        root: Folder for the temporary work dirs.
    """
    from mmengine.runner import Runner

    with tempfile.TemporaryDirectory(dir=root) as tmp:
        with_hook = Runner.from_cfg(_named(cfg, tmp, 'mis', _hook(True)))
        without = Runner.from_cfg(_named(cfg, tmp, 'mis_off', None))
        out = _ratio(with_hook, without, repeats)
        out['samples'] = len(with_hook.test_dataloader.dataset)
    return out


def _timed(cmd) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=str(REPO_ROOT), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f'{" ".join(cmd[:3])} failed:\n{proc.stderr[-3000:]}'
        )
    return time.perf_counter() - start


def folder_vs_inferencer(
    config: str,
    images: str,
    root: str,
    batch: int = 16,
    repeats: int = 2,
    device: str = 'cpu',
) -> Dict[str, float]:
    """Row (c): our tool vs plain inference on the same folder.

    Both run in fresh processes, alternately, with the same batch size and
    no DataLoader workers (the inferencer has none).

    Returns:
        dict: ``ours``, ``plain`` (median s), ``ratio`` (time per image,
        ours / plain), ``images``.
    """
    cfg, ckpt = save_random_checkpoint(config, root)
    num = len(glob.glob(osp.join(images, '*.jpg')))
    out_dir = osp.join(root, 'cams')
    ours = our_tool_cmd(images, cfg, ckpt, out_dir, batch, 0, device)
    plain = [
        sys.executable,
        '-c',
        INFERENCER_SCRIPT,
        cfg,
        ckpt,
        images,
        str(batch),
        device,
    ]
    times = interleaved_medians(
        {'ours': lambda: _timed(ours), 'plain': lambda: _timed(plain)},
        repeats=repeats,
        warmup=0,
    )
    written = len(glob.glob(osp.join(out_dir, '*_cam.png')))
    if written != num:
        raise RuntimeError(f'our tool wrote {written} maps for {num} images')
    return dict(times, ratio=times['ours'] / times['plain'], images=num)
