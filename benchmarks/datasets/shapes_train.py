"""Train a tiny MMPretrain classifier on the generated shapes data.

CAM quality can only be measured on a model that has learnt something, and
no trained weights for a data set with known object boxes can be downloaded
here. This trains one (a tiny CNN or ViT from
``benchmarks/configs/shapes/``) with the MMEngine Runner in about a minute
on a CPU, seeded, and caches the checkpoint so that tests and benchmarks
share one training per setting.
"""

import hashlib
import os.path as osp
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from .shapes import ShapesConfig, make_shapes_split

__all__ = [
    'train_shapes_classifier',
    'shapes_config',
    'prepare_shapes_data',
    'SHAPES_ARCHS',
    'SHAPES_CONFIG_DIR',
]

# benchmarks/configs/shapes: configs of the benchmark models (not shipped).
SHAPES_CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs' / 'shapes'
SHAPES_ARCHS = {
    'cnn': 'shapes_cnn.py',
    'vit': 'shapes_vit.py',
    'swin': 'shapes_swin.py',
}


def shapes_config(
    arch: str,
    data_root: str,
    epochs: int = 8,
    seed: int = 0,
    extra_cfg: Optional[Dict[str, Any]] = None,
) -> Config:
    """The training config of ``arch`` for data in ``data_root``.

    Args:
        arch: ``'cnn'``, ``'vit'`` or ``'swin'``.
        data_root: Folder with ``train/`` and ``val/`` splits.
        epochs: Training epochs (validation runs once, at the end).
        seed: Runner seed.
        extra_cfg: Merged last (``Config.merge_from_dict`` keys such as
            ``'train_dataloader.batch_size'``).
    """
    if arch not in SHAPES_ARCHS:
        raise ValueError(
            f'arch must be one of {sorted(SHAPES_ARCHS)}, got {arch!r}.'
        )
    path = SHAPES_CONFIG_DIR / SHAPES_ARCHS[arch]
    if not path.exists():
        raise FileNotFoundError(
            f'{path} is missing: train_shapes_classifier reads the configs '
            'of the repository (benchmarks/configs/shapes); run from a '
            'clone of mmcam_ext.'
        )
    cfg = Config.fromfile(str(path))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(data_root)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.param_scheduler.T_max = epochs
    cfg.randomness = dict(seed=seed, deterministic=False)
    if extra_cfg:
        cfg.merge_from_dict(extra_cfg)
    return cfg


def prepare_shapes_data(
    root: str, cfg: Config, size: Tuple[int, int], seed: int
) -> str:
    """Generate the train/val splits the config asks for (kept if present).

    The val split uses a different seed than train, so no image repeats.
    """
    spec = cfg.get('shapes_data', {})
    common = dict(
        size=tuple(size),
        scale=tuple(spec.get('scale', (0.3, 0.5))),
        distractors=spec.get('distractors', 3),
    )
    make_shapes_split(
        root,
        'train',
        ShapesConfig(
            per_class=spec.get('train_per_class', 60), seed=seed, **common
        ),
    )
    make_shapes_split(
        root,
        'val',
        ShapesConfig(
            per_class=spec.get('val_per_class', 20), seed=seed + 1000, **common
        ),
    )
    return root


def train_shapes_classifier(
    arch: str,
    work_dir: str,
    epochs: int = 8,
    size: Tuple[int, int] = (64, 64),
    seed: int = 0,
    extra_cfg: Optional[Dict[str, Any]] = None,
) -> Tuple[Config, str]:
    """Train (or reuse) a tiny classifier on generated shapes.

    The data go to ``<work_dir>/data_<h>x<w>_s<seed>_<hash>`` (hash of the
    config's ``shapes_data``); the run to
    ``<work_dir>/<arch>_<hash>``, where the hash covers the whole config, so
    a cached checkpoint is reused only for exactly the same setting.

    Args:
        arch: ``'cnn'`` (tiny ResNet), ``'vit'`` (tiny cls-token ViT) or
            ``'swin'`` (tiny Swin: windows, shifts, patch merging).
        work_dir: Root folder for data and runs.
        epochs: Training epochs.
        size: ``(height, width)`` of the generated images.
        seed: Seed of data generation and training.
        extra_cfg: Config overrides (``merge_from_dict`` keys).

    Returns:
        The config (its ``work_dir`` and ``load_from`` set to the run and
        the checkpoint, ready for ``Runner.from_cfg(cfg).test()``) and the
        checkpoint path.
    """
    cfg = shapes_config(arch, '', epochs, seed, extra_cfg)
    data_key = hashlib.sha1(
        repr(sorted(cfg.get('shapes_data', {}).items())).encode()
    ).hexdigest()[:6]
    data_root = osp.join(
        work_dir, f'data_{size[0]}x{size[1]}_s{seed}_{data_key}'
    )
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    if arch == 'vit' and tuple(size) != (64, 64):
        cfg.model.backbone.img_size = tuple(size)
    key = hashlib.sha1(cfg.pretty_text.encode()).hexdigest()[:10]
    cfg.work_dir = osp.join(work_dir, f'{arch}_{key}')
    ckpt = osp.join(cfg.work_dir, f'epoch_{epochs}.pth')
    if not osp.exists(ckpt):
        prepare_shapes_data(data_root, cfg, size, seed)
        _train(cfg)
        if not osp.exists(ckpt):
            raise RuntimeError(
                f'Training finished but {ckpt} was not '
                'written; check default_hooks.checkpoint.'
            )
    else:
        print_log(f'[mmcam_ext] reusing {ckpt}', logger='current')
    cfg.load_from = ckpt
    return cfg, ckpt


def _train(cfg: Config) -> None:
    """Run the Runner on a copy, so the returned config stays unbuilt."""
    from mmengine.runner import Runner

    import mmcam_ext  # noqa: F401  (registers the CAM visualizer)

    runner = Runner.from_cfg(cfg.copy())
    runner.train()
