"""Shared test fixtures: quiet logs, seeded RNG, models built from configs.

``small_setup``: a small resnet18 config with a 64 px test pipeline, a
random checkpoint saved like a user's (``{'state_dict': ...}``) and images
of mixed sizes, for the inferencer and tool tests.
"""
import logging
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture(autouse=True)
def _seed_and_quiet():
    torch.manual_seed(0)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield


def build_classifier(name_or_cfg, random_head: bool = True, **kwargs):
    """Build an MMPretrain classifier with random weights, in eval mode.

    Some configs zero-initialise the head (MAE fine-tuning recipes); a zero
    head gives zero gradients everywhere, which says nothing about a CAM, so
    the head is re-drawn from N(0, 0.02) unless ``random_head=False``.
    """
    from mmpretrain import get_model
    model = get_model(name_or_cfg, pretrained=False, **kwargs)
    if random_head and hasattr(model, 'head'):
        for p in model.head.parameters():
            torch.nn.init.normal_(p, std=0.02)
    return model.eval()


SMALL_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=80, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]


def mmpretrain_config(rel: str) -> str:
    import mmpretrain
    return osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs', rel)


@pytest.fixture(scope='module')
def small_setup(tmp_path_factory):
    from mmpretrain import get_model
    root = tmp_path_factory.mktemp('cam_api')
    cfg = Config.fromfile(mmpretrain_config('resnet/resnet18_8xb32_in1k.py'))
    cfg.test_dataloader.dataset.pipeline = SMALL_PIPELINE
    cfg_path = str(root / 'resnet18_small.py')
    cfg.dump(cfg_path)
    torch.manual_seed(0)
    model = get_model(cfg)
    model.init_weights()
    ckpt = str(root / 'random.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    img_dir = root / 'images'
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(70, 90), (96, 80), (80, 80)]):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        img[h // 4:h // 2, w // 4:w // 2] = (20, 200, 240)  # distinct blob
        mmcv.imwrite(img, str(img_dir / f'img{i}.png'))
    return dict(root=root, config=cfg_path, ckpt=ckpt, img_dir=str(img_dir))
