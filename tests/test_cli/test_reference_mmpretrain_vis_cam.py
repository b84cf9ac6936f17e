"""Our GradCAM equals MMPretrain 1.2.0's own vis_cam machinery.

MMPretrain's script is copied at run time (not vendored) and patched only
for its two incompatibilities with the current stack: ``import
pkg_resources`` and the ``use_cuda=`` argument that grad-cam 1.5 removed.
Its ``init_cam`` + ``reshape_transform`` then run pytorch-grad-cam on the
same model, layer and targets as our engine.
"""

import argparse
import importlib.util
import os.path as osp
from functools import partial

import mmpretrain
import numpy as np
import pytest
import torch

from mmcam_ext.apis import CAMEngine
from mmcam_ext.utils.model import get_module
from tests.helpers.models import build_classifier

MM_TOOL = osp.join(
    osp.dirname(mmpretrain.__file__),
    '.mim',
    'tools',
    'visualization',
    'vis_cam.py',
)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    src = open(MM_TOOL).read()
    patches = [('import pkg_resources\n', ''), (', use_cuda=use_cuda)', ')')]
    for old, new in patches:
        assert src.count(old) == 1, f'MMPretrain vis_cam changed: {old!r}'
        src = src.replace(old, new)
    path = tmp_path_factory.mktemp('ref') / 'mmpretrain_vis_cam.py'
    path.write_text(src)
    spec = importlib.util.spec_from_file_location('mmpretrain_vis_cam', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    'config,layer,vit_like',
    [
        # Not bn2: BasicBlock adds the identity to bn2's output in place,
        # and on CPU pytorch-grad-cam stores ``output.cpu().detach()`` --
        # the same storage -- so it would record the post-addition values
        # (on GPU ``.cpu()`` copies). conv2's output is not modified in place.
        ('resnet18_8xb32_in1k', 'backbone.layer4.1.conv2', False),
        ('deit-tiny_4xb256_in1k', 'backbone.layers.11.ln1', True),
    ],
)
def test_gradcam_matches_mmpretrain_vis_cam(
    reference, config, layer, vit_like
):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = build_classifier(config)
    inputs = torch.randn(2, 3, 112, 112)
    ours = CAMEngine(model, target_layers=[layer]).explain(
        inputs, ('gradcam',), targets=[3, 500]
    )
    args = argparse.Namespace(vit_like=vit_like, num_extra_tokens=None)
    cam = reference.init_cam(
        'gradcam',
        model,
        [get_module(model, layer)],
        False,
        partial(reference.reshape_transform, model=model, args=args),
    )
    try:
        theirs = cam(
            inputs, [ClassifierOutputTarget(3), ClassifierOutputTarget(500)]
        )
    finally:
        cam.activations_and_grads.release()
    assert theirs.shape == (2, 112, 112)
    assert np.ptp(theirs) > 0.5  # a real map, not a blank one
    np.testing.assert_allclose(ours.maps['GradCAM'][:, 0], theirs, atol=1e-4)
