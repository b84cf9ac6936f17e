"""Shared test fixtures: quiet logs, seeded RNG, models built from configs.

``small_setup``: a small resnet18 config with a 64 px test pipeline, a
random checkpoint saved like a user's (``{'state_dict': ...}``) and images
of mixed sizes, for the inferencer and tool tests.
"""

import logging
import os

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.helpers.models import SMALL_PIPELINE, mmpretrain_config

os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture(autouse=True)
def _seed_and_quiet():
    torch.manual_seed(0)
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield


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
        img[h // 4 : h // 2, w // 4 : w // 2] = (20, 200, 240)  # distinct blob
        mmcv.imwrite(img, str(img_dir / f'img{i}.png'))
    return dict(root=root, config=cfg_path, ckpt=ckpt, img_dir=str(img_dir))
