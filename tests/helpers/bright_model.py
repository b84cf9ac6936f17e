"""A tiny MMPretrain classifier whose class 0 is "a bright patch is here".

Its backbone's one feature map is ``ReLU(mean of the normalised channels)``:
positive exactly on bright pixels, zero on a dark background, so a
Grad-CAM of class 0 at the backbone's output peaks on the bright patch, at
any input size. Built from a config, with the test pipeline of
``SMALL_PIPELINE``, so the inferencer and the tool run it as any model.
"""

import numpy as np
import torch
from mmengine.config import Config
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import nn

from tests.helpers.models import SMALL_PIPELINE

__all__ = ['BrightBackbone', 'bright_config', 'bright_model', 'photo']


@MODELS.register_module(force=True)
class BrightBackbone(BaseBackbone):
    """One channel: the ReLU of the pixel's mean normalised brightness."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
            self.conv.bias.zero_()

    def forward(self, x):
        return (torch.relu(self.conv(x)),)


def bright_config() -> Config:
    """An ``ImageClassifier`` config: BrightBackbone, GAP, 2 classes."""
    return Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='BrightBackbone'),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=2, in_channels=1),
            ),
            data_preprocessor=dict(
                num_classes=2,
                mean=[127.5] * 3,
                std=[127.5] * 3,
                to_rgb=True,
            ),
            test_dataloader=dict(
                dataset=dict(type='CustomDataset', pipeline=SMALL_PIPELINE)
            ),
        )
    )


def bright_model():
    """The classifier, class 0 = brightness (weight 1), class 1 = 0."""
    from mmpretrain import get_model

    model = get_model(bright_config(), pretrained=False)
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.head.fc.bias.zero_()
    return model.eval()


def photo(height: int, width: int, box) -> np.ndarray:
    """A dark BGR photo with one bright square ``(x0, y0, x1, y1)``."""
    img = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img
