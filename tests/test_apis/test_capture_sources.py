"""The capture sources refuse the same layouts with the same error."""

from types import SimpleNamespace

import pytest
import torch

from mmcam_ext.apis.capture_sources import EnginePass
from mmcam_ext.apis.loop_grad import LoopSource
from mmcam_ext.errors import LayoutError
from mmcam_ext.structures import TargetSpec


class _Windows(torch.nn.Module):
    """A 'layer' whose batch is windows: 4 rows per image."""

    def forward(self, x):
        return x.repeat(4, 1, 1, 1)


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.win = _Windows()

    def forward(self, x, mode='tensor'):
        return self.win(x)[: len(x)].mean((2, 3))


def test_a_batch_of_windows_is_a_layout_error_on_every_path():
    x = torch.randn(2, 3, 4, 4)
    model = _Model()
    spec = TargetSpec(['win'])
    with pytest.raises(LayoutError, match='batch = windows'):
        with EnginePass(model, x, spec, [model.win], lambda t: t, True):
            pass
    logits = torch.randn(2, 5, requires_grad=True)
    capture = SimpleNamespace(
        complete=True,
        logits=logits,
        input_size=(4, 4),
        spec=spec,
        grid=None,
        outputs=[torch.randn(8, 3, 4, 4)],
    )
    with pytest.raises(LayoutError, match='batch = windows'):
        LoopSource(capture, [0, 1])
