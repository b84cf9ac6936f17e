"""The hook's two paths to the maps, and where its time is booked.

Fast path (tiny CNN: last stage -> GAP -> linear head) and in-loop
gradients (tiny ViT, class-token layer): no forward of the hook's own, the
maps come from the loop's forward. General path (here: ``aug_smooth``):
extra passes only for a batch that has a chosen sample. The hook's work
is part of the iteration's ``time``, never of the next iteration's
``data_time``.
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


def _engine_maps(runner, indices, methods, **kw):
    """The engine's general path on the same preprocessed samples."""
    model = runner.model
    dataset = runner.val_dataloader.dataset
    batch = runner.val_dataloader.collate_fn([dataset[i] for i in indices])
    inputs = model.data_preprocessor(batch, False)['inputs']
    with torch.no_grad():
        preds = model(inputs, mode='tensor').argmax(1).numpy()
    gts = [int(s.gt_label[0]) for s in batch['data_samples']]
    engine = CAMEngine(model, fast_path=False)
    return engine.explain(
        inputs, methods, targets=np.stack([preds, gts], 1), **kw
    )


def _check_maps(folder, indices, res, atol=1e-5):
    for j, idx in enumerate(indices):
        for k, kind in enumerate(('pred', 'gt')):
            for method in res.maps:
                ((row, cam),) = load_cams(folder, idx, method, kind)
                assert row['target'] == int(res.targets[j, k])
                np.testing.assert_allclose(
                    cam, res.maps[method][j, k], atol=atol
                )


def test_in_loop_gradients_add_no_forward_on_a_vit(tmp_path):
    """Class-token ViT: the loop's own forward builds the graph from the
    target layer on; the maps equal the engine's general path."""
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam', 'layercam', 'eigengradcam'],
        target='both',
        samples=dict(mode='indices', indices=[1, 3, 11]),
        output=dict(save_raw=True, raw_dtype='float32'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, arch='vit', hook=hook))
    sizes = _forward_sizes(runner)
    runner.val()
    assert sizes == [1, 5, 5, 2]  # probe, then the loop's forwards only
    res = _engine_maps(
        runner, (1, 3, 11), ['gradcam', 'layercam', 'eigengradcam']
    )
    _check_maps(_folder(runner), (1, 3, 11), res)
    assert torch.is_grad_enabled()  # grad mode as before the run


def test_general_path_passes_only_for_batches_with_a_pick(tmp_path):
    """aug_smooth needs its own passes: they run once per batch that holds
    a chosen sample, for all of its chosen samples together."""
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        target='both',
        samples=dict(mode='indices', indices=[1, 3, 11]),
        explain=dict(aug_smooth=True),
        output=dict(save_raw=True, raw_dtype='float32'),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, arch='vit', hook=hook))
    sizes = _forward_sizes(runner)
    runner.val()
    # batches [0..4], [5..9], [10, 11]: picks {1, 3}, none, {11}; per
    # explained batch one scoring forward + 6 augmented passes
    assert sizes == [1, 5] + [2] * 7 + [5, 2] + [1] * 7
    res = _engine_maps(runner, (1, 3, 11), ['gradcam'], aug_smooth=True)
    _check_maps(_folder(runner), (1, 3, 11), res)


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
