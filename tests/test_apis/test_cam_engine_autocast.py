"""Optional autocast of the gradient pass (CPU bfloat16 stands in for
CUDA float16 here): off by default, close to float32 when on."""

import numpy as np
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.utils.capture import LayerCapture
from tests.helpers.models import build_classifier


def test_autocast_runs_the_forward_in_low_precision_and_stays_close(
    monkeypatch,
):
    torch.manual_seed(0)
    model = build_classifier('resnet18_8xb32_in1k')
    x = torch.randn(2, 3, 64, 64)
    plain = (
        CAMEngine(model, ['backbone.layer4'])
        .explain(x, ['gradcam'], targets=[1, 2])
        .maps['GradCAM']
    )
    dtypes = []
    real_hook = LayerCapture._make_hook

    def spy(self, index):
        hook = real_hook(self, index)

        def wrapped(module, args, output):
            dtypes.append(output.dtype)
            return hook(module, args, output)

        return wrapped

    monkeypatch.setattr(LayerCapture, '_make_hook', spy)
    amp = (
        CAMEngine(model, ['backbone.layer4'], autocast=torch.bfloat16)
        .explain(x, ['gradcam'], targets=[1, 2])
        .maps['GradCAM']
    )
    assert torch.bfloat16 in dtypes
    assert amp.dtype == np.float32
    corr = np.corrcoef(plain.ravel(), amp.ravel())[0, 1]
    assert corr > 0.95
