"""Shared set-up of the engine tests: tiny shapes configs and model probes."""

import itertools
from pathlib import Path
from typing import Dict, Optional

import torch
from mmengine.config import Config
from torch import nn

from benchmarks.datasets.shapes_train import prepare_shapes_data, shapes_config

_RUN_IDS = itertools.count()


def tiny_cfg(
    tmp: Path,
    arch: str = 'cnn',
    size=(32, 32),
    per_class: int = 4,
    epochs: int = 1,
    hook: Optional[dict] = None,
    tensorboard: bool = False,
) -> Config:
    """A shapes config on a few tiny images, with the user's config lines.

    ``custom_imports`` + ``custom_hooks`` are written exactly as a user
    writes them in an MMPretrain config (default scope ``mmpretrain``).
    """
    root = Path(tmp) / f'data_{size[0]}x{size[1]}_{per_class}'
    cfg = shapes_config(arch, str(root), epochs=epochs)
    cfg.shapes_data.train_per_class = per_class
    cfg.shapes_data.val_per_class = per_class
    prepare_shapes_data(str(root), cfg, size, seed=0)
    if arch == 'vit':
        cfg.model.backbone.img_size = tuple(size)
    cfg.train_dataloader.batch_size = 4
    cfg.val_dataloader.batch_size = 5  # not a divisor: partial last batch
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.val_interval = 1
    cfg.work_dir = str(Path(tmp) / f'work_{next(_RUN_IDS)}')
    # Unique names: MMEngine reuses a visualizer/logger of the same name.
    cfg.experiment_name = Path(cfg.work_dir).name + f'_{id(cfg)}'
    cfg.custom_imports = dict(
        imports=['mmcam_ext'], allow_failed_imports=False
    )
    cfg.custom_hooks = [hook] if hook else []
    backends = [dict(type='LocalVisBackend')]
    if tensorboard:
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer = dict(type='CAMVisualizer', vis_backends=backends)
    return cfg


def hook_count(model: nn.Module) -> int:
    """All torch hooks registered on any module of ``model``."""
    names = (
        '_forward_hooks',
        '_forward_pre_hooks',
        '_backward_hooks',
        '_backward_pre_hooks',
        '_state_dict_hooks',
    )
    return sum(len(getattr(m, n, {})) for m in model.modules() for n in names)


def model_state(model: nn.Module) -> Dict[str, object]:
    """Everything the hook must leave untouched, cloned."""
    return dict(
        tensors={k: v.detach().clone() for k, v in model.state_dict().items()},
        grads={
            n: None if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters()
        },
        requires_grad={
            n: p.requires_grad for n, p in model.named_parameters()
        },
        training={n: m.training for n, m in model.named_modules()},
    )


def assert_same_state(before: Dict[str, object], after: Dict[str, object]):
    for key in ('requires_grad', 'training'):
        assert before[key] == after[key], key
    for name, value in before['tensors'].items():
        assert torch.equal(value, after['tensors'][name]), name
    for name, grad in before['grads'].items():
        other = after['grads'][name]
        assert (grad is None) == (other is None), name
        if grad is not None:
            assert torch.equal(grad, other), name
