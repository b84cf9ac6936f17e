"""HookSet: the one owner of torch hook handles."""

import pytest
import torch
from torch import nn

from mmcam_ext.utils.capture import HookSet


def test_hookset_removes_everything_also_on_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    seen, undone = [], []
    with pytest.raises(RuntimeError):
        with HookSet() as hooks:
            hooks.forward(model[0], lambda m, a, out: seen.append('fwd'))
            hooks.pre(model[1], lambda m, a: seen.append('pre'))
            hooks.on_remove(lambda: undone.append(1))
            hooks.on_remove(lambda: undone.append(2))
            model(torch.zeros(1, 2))
            assert hooks
            raise RuntimeError('boom')
    assert seen == ['fwd', 'pre']
    assert undone == [2, 1]  # newest first
    assert not hooks
    assert not model[0]._forward_hooks and not model[1]._forward_pre_hooks
    model(torch.zeros(1, 2))
    assert seen == ['fwd', 'pre']  # nothing fires any more
