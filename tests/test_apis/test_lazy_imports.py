"""A GradCAM run does not import what only other methods need."""

import subprocess
import sys

CODE = """
import sys, torch
from mmcam_ext import CAMEngine
from mmpretrain import get_model
model = get_model('resnet18_8xb32_in1k', pretrained=False)
CAMEngine(model).explain(torch.randn(1, 3, 32, 32), ['gradcam', 'eigencam'])
print(sorted(m for m in ('pytorch_grad_cam', 'ttach')
             if m in sys.modules))
"""


def test_gradcam_run_does_not_import_pytorch_grad_cam():
    out = subprocess.run(
        [sys.executable, '-c', CODE],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == '[]'
