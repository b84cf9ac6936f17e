"""A toy model whose class 0 looks at one image region, for score tests."""

import torch
from torch import nn

__all__ = ['SIZE', 'REGION', 'RegionModel', 'scene', 'object_map']

SIZE = 16
REGION = (slice(4, 8), slice(8, 12))  # rows, cols of the "object"


class RegionModel(nn.Module):
    """Class 0 scores the mean brightness of REGION, class 1 is fixed."""

    def forward(self, x, mode='tensor'):
        region = x[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return torch.stack([10 * (region - 0.6), torch.zeros_like(region)], 1)


def scene(batch=2):
    x = torch.zeros(batch, 3, SIZE, SIZE)
    x[:, :, REGION[0], REGION[1]] = 1.0
    return x


def object_map(batch=2):
    m = torch.zeros(batch, SIZE, SIZE)
    m[:, REGION[0], REGION[1]] = 1.0
    return m
