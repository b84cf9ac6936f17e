"""The model fingerprint a dump records (compared by pattern mining)."""

import copy

import torch
from torch import nn

from mmcam_ext.utils.model import model_fingerprint


def _net(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, classes))


def test_same_weights_same_fingerprint():
    net = _net()
    assert model_fingerprint(net) == model_fingerprint(copy.deepcopy(net))
    assert len(model_fingerprint(net)) == 16


def test_other_weights_or_head_another_fingerprint():
    net, other = _net(), _net()
    with torch.no_grad():
        other[0].weight.view(-1)[0] += 0.5  # another checkpoint
    assert model_fingerprint(net) != model_fingerprint(other)
    assert model_fingerprint(net) != model_fingerprint(_net(classes=5))


def test_wrappers_are_unwrapped():
    class Wrapper(nn.Module):  # as DDP: the model under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    net = _net()
    assert model_fingerprint(Wrapper(net)) == model_fingerprint(net)
