"""The hook's two paths to the maps, and where its time is booked.

Fast path (tiny CNN: last stage -> GAP -> linear head): no forward of the
hook's own, the maps come from the loop's forward. General path (tiny ViT,
class-token layer): one extra pass per batch that has a chosen sample, none
for the others. The hook's work is part of the iteration's ``time``, never
of the next iteration's ``data_time``.
"""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext import CAMEngine
from mmcam_ext.fileio import load_cams, read_index
from mmcam_ext.methods.gradient import GradCAM
from mmcam_ext.registry import CAM_METHODS
from tests.helpers.runner import tiny_cfg


def _forward_sizes(runner):
    """Batch sizes of every backbone forward from now on."""
    sizes = []
    runner.model.backbone.register_forward_pre_hook(
        lambda m, args: sizes.append(len(args[0]))
    )
    return sizes


def _folder(runner):
    (folder,) = Path(runner.work_dir, 'cam').glob('val_*')
    return folder


def test_fast_path_adds_no_forward(tmp_path):
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam', 'gradcam++', 'eigencam'],
        target='both',
        samples=dict(mode='all'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    sizes = _forward_sizes(runner)
    runner.val()
    # the run-start check: one sample for the layer choice, one for the
    # fast-path detection; then exactly the loop's own forwards
    assert sizes == [1, 1, 5, 5, 2]
    assert len(read_index(_folder(runner))) == 12 * 2 * 3
    del sizes[:]
    runner.val()  # a second evaluation: everything cached
    assert sizes == [5, 5, 2]


def test_general_path_one_pass_per_batch_with_a_pick(tmp_path):
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam', 'layercam'],
        target='both',
        samples=dict(mode='indices', indices=[1, 3, 11]),
        output=dict(save_raw=True, raw_dtype='float32'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, arch='vit', hook=hook))
    sizes = _forward_sizes(runner)
    runner.val()
    # batches [0..4], [5..9], [10, 11]: picks {1, 3}, none, {11}
    assert sizes == [1, 5, 2, 5, 2, 1]  # probe, loop, extra, loop, loop, extra
    # the maps are the engine's on the same preprocessed samples
    model = runner.model
    dataset = runner.val_dataloader.dataset
    batch = runner.val_dataloader.collate_fn([dataset[i] for i in (1, 3, 11)])
    inputs = model.data_preprocessor(batch, False)['inputs']
    with torch.no_grad():
        preds = model(inputs, mode='tensor').argmax(1).numpy()
    gts = [int(s.gt_label[0]) for s in batch['data_samples']]
    res = CAMEngine(model).explain(
        inputs, ['gradcam', 'layercam'], targets=np.stack([preds, gts], 1)
    )
    folder = _folder(runner)
    for j, idx in enumerate((1, 3, 11)):
        for k, kind in enumerate(('pred', 'gt')):
            for method in ('GradCAM', 'LayerCAM'):
                ((row, cam),) = load_cams(folder, idx, method, kind)
                assert row['target'] == int(res.targets[j, k])
                np.testing.assert_allclose(
                    cam, res.maps[method][j, k], atol=1e-5
                )


class SlowTestCAM(GradCAM):
    """Grad-CAM that takes 0.3 s per call."""

    def layer_map(self, acts, grads, eigen_smooth):
        time.sleep(0.3)
        return super().layer_map(acts, grads, eigen_smooth)


@pytest.fixture
def slow_method():
    CAM_METHODS.register_module(module=SlowTestCAM)
    yield 'SlowTestCAM'
    CAM_METHODS.module_dict.pop('SlowTestCAM')


def test_hook_time_is_not_data_time(tmp_path, slow_method):
    hook = dict(
        type='CAMVisualizationHook',
        methods=[slow_method],
        samples=dict(mode='all'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    runner.val()
    hub = runner.message_hub
    data_time = hub.get_scalar('val/data_time').data[0]
    iter_time = hub.get_scalar('val/time').data[0]
    assert len(iter_time) == 3
    assert min(iter_time) >= 0.3  # the hook's work, in the iteration
    assert max(data_time) < 0.2  # ... and not in loading the next batch
