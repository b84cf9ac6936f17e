"""CAMVisualizationHook in real MMEngine Runners on tiny untrained models.

Covers the config form users write, the sample options, the on-disk dump,
the vis backends and that the run is not disturbed. Training-quality checks
(CAM inside the object box) are in test_cam_e2e.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext.fileio import read_index
from tests.helpers.runner import (
    assert_same_state,
    hook_count,
    model_state,
    tiny_cfg,
)

HOOK = dict(type='CAMVisualizationHook', methods=['gradcam', 'layercam'])


def _run_val(tmp_path, hook, **kw):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook, **kw))
    metrics = runner.val()
    return runner, metrics


def _dump_dirs(runner):
    return sorted(p for p in Path(runner.work_dir, 'cam').iterdir())


def test_config_form_builds_hook_under_mmpretrain_scope(tmp_path):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=HOOK))
    assert runner.cfg.default_scope == 'mmpretrain'
    names = [type(h).__name__ for h in runner.hooks]
    assert 'CAMVisualizationHook' in names


def test_val_dump_matches_dataset(tmp_path):
    hook = dict(HOOK, samples=dict(mode='all'), output=dict(save_raw=True))
    runner, _ = _run_val(tmp_path, hook)
    (folder,) = _dump_dirs(runner)
    assert folder.name == f'val_{runner.timestamp}'  # val-only: no step
    rows = read_index(folder)
    dataset = runner.val_dataloader.dataset
    assert len(rows) == len(dataset) * 2  # two methods
    assert {r['method'] for r in rows} == {'GradCAM', 'LayerCAM'}
    for row in rows:
        info = dataset.get_data_info(row['dataset_index'])
        assert row['img_path'] == info['img_path']
        assert row['gt'] == int(info['gt_label'])
        overlay = folder / row['file']
        assert overlay.is_file() and (folder / row['input_file']).is_file()
        cam = np.load(folder / row['raw_file'])
        assert cam.shape == (32, 32) and 0 <= cam.min() <= cam.max() <= 1
    assert (folder / 'index.html').is_file()


@pytest.mark.parametrize(
    'samples, expect',
    [
        (dict(mode='first', num=3), [0, 1, 2]),
        (dict(mode='indices', indices=[7, 2, 11]), [2, 7, 11]),
        (dict(mode='all', classes=['square']), 'square'),
        (dict(mode='all', max_per_eval=5), 5),
    ],
)
def test_sample_selection(tmp_path, samples, expect):
    hook = dict(HOOK, methods='gradcam', samples=samples)
    runner, _ = _run_val(tmp_path, hook)
    rows = read_index(_dump_dirs(runner)[0])
    indices = sorted(r['dataset_index'] for r in rows)
    dataset = runner.val_dataloader.dataset
    if expect == 'square':
        square = dataset.metainfo['classes'].index('square')
        want = [
            i
            for i in range(len(dataset))
            if dataset.get_data_info(i)['gt_label'] == square
        ]
        assert indices == want
    elif isinstance(expect, int):
        assert len(indices) == expect
    else:
        assert indices == expect


def test_random_selection_is_seeded(tmp_path):
    hook = dict(
        HOOK, methods='gradcam', samples=dict(mode='random', num=4, seed=3)
    )
    picked = []
    for sub in ('a', 'b'):
        runner, _ = _run_val(tmp_path / sub, hook)
        rows = read_index(_dump_dirs(runner)[0])
        picked.append(sorted(r['dataset_index'] for r in rows))
    assert picked[0] == picked[1] and len(picked[0]) == 4
    assert picked[0] != [0, 1, 2, 3]


def test_misclassified_only_and_both_targets(tmp_path):
    hook = dict(
        HOOK,
        methods='gradcam',
        target='both',
        samples=dict(mode='all', misclassified_only=True),
    )
    runner, metrics = _run_val(tmp_path, hook)
    rows = read_index(_dump_dirs(runner)[0])
    n_wrong = round(
        (1 - metrics['accuracy/top1'] / 100)
        * len(runner.val_dataloader.dataset)
    )
    assert n_wrong > 0, 'untrained model should misclassify some samples'
    assert len({r['dataset_index'] for r in rows}) == n_wrong
    assert all(r['misclassified'] and r['gt'] != r['pred'] for r in rows)
    for row in rows:
        want = row['pred'] if row['target_kind'] == 'pred' else row['gt']
        assert row['target'] == want
    assert len(rows) == 2 * n_wrong


def test_csv_index_and_test_phase(tmp_path):
    hook = dict(
        HOOK, methods='gradcam', phases='test', output=dict(index_format='csv')
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    runner.val()
    assert not Path(runner.work_dir, 'cam').exists()  # val not selected
    runner.test()
    (folder,) = _dump_dirs(runner)
    assert folder.name == f'test_{runner.timestamp}'
    rows = read_index(folder)
    assert [int(r['dataset_index']) for r in rows] == list(range(8))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    runner.test()  # a second test run never overwrites the first dump
    first, second = _dump_dirs(runner)
    assert (first, second.name) == (folder, f'test_{runner.timestamp}_2')
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert len(read_index(second)) == len(rows)


def test_hook_leaves_model_alone_and_removes_torch_hooks(tmp_path):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=HOOK))
    model = runner.model
    for p in list(model.parameters())[::3]:
        p.grad = torch.randn_like(p)  # a training step would leave these
    model.backbone.layer1.train()  # a mixed train/eval model
    before, handles = model_state(model), hook_count(model)
    for _ in range(3):
        runner.val()
        assert hook_count(model) == handles
    model.train(False)  # the val loop puts the model in eval mode itself
    before['training'] = {n: m.training for n, m in model.named_modules()}
    assert_same_state(before, model_state(model))


def test_metrics_identical_with_and_without_hook(tmp_path):
    _, with_hook = _run_val(
        tmp_path / 'on', dict(HOOK, samples=dict(mode='all'))
    )
    _, without = _run_val(tmp_path / 'off', None)
    assert with_hook == without


@pytest.mark.slow
def test_training_identical_with_and_without_hook(tmp_path):
    """Params, BN stats and optimizer state after 2 epochs with a val each
    epoch are bit-identical with the hook on and off (so no RNG drift)."""
    states = []
    for sub, hook in (
        ('on', dict(HOOK, samples=dict(mode='all'))),
        ('off', None),
    ):
        runner = Runner.from_cfg(tiny_cfg(tmp_path / sub, epochs=2, hook=hook))
        runner.train()
        states.append(
            (
                runner.model.state_dict(),
                runner.optim_wrapper.state_dict()['state'],
            )
        )
    (model_a, optim_a), (model_b, optim_b) = states
    for name in model_a:
        assert torch.equal(model_a[name], model_b[name]), name
    assert optim_a.keys() == optim_b.keys()
    for key in optim_a:
        for name, value in optim_a[key].items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(optim_b[key][name])
            ), name
    # and the hook did dump both evaluations, by epoch
    names = [p.name for p in Path(tmp_path, 'on').glob('work_*/cam/*')]
    assert sorted(names) == ['val_epoch_1', 'val_epoch_2']


def test_interval_counts_evaluations(tmp_path):
    runner = Runner.from_cfg(
        tiny_cfg(tmp_path, epochs=3, hook=dict(HOOK, interval=2))
    )
    runner.train()
    assert [p.name for p in _dump_dirs(runner)] == ['val_epoch_2']


def test_error_in_cam_work_is_a_warning(tmp_path):
    hook = dict(HOOK, explain=dict(target_layers=['backbone.no_such_layer']))
    runner, metrics = _run_val(tmp_path, hook)
    _, clean = _run_val(tmp_path / 'clean', None)
    assert metrics == clean
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'CAMVisualizationHook skipped a batch' in log
    assert 'no_such_layer' in log
    (folder,) = _dump_dirs(runner)
    assert json.loads((folder / 'index.json').read_text())['rows'] == []


def test_strict_mode_reraises(tmp_path):
    hook = dict(
        HOOK,
        strict=True,
        explain=dict(target_layers=['backbone.no_such_layer']),
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    with pytest.raises(KeyError, match='no_such_layer'):
        runner.val()


def test_images_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    hook = dict(HOOK, samples=dict(mode='first', num=3))
    runner = Runner.from_cfg(
        tiny_cfg(tmp_path, epochs=1, hook=hook, tensorboard=True)
    )
    runner.train()
    events = list(Path(runner.log_dir).rglob('events.out.tfevents*'))
    assert events, 'no TensorBoard event file'
    acc = EventAccumulator(str(events[0].parent), size_guidance={'images': 0})
    acc.Reload()
    tags = sorted(t for t in acc.Tags()['images'] if t.startswith('cam_val'))
    assert tags == [f'cam_val/{i:06d}_pred' for i in range(3)]
    image = acc.Images(tags[0])[0]
    assert image.step == 1 and image.width > 32 * 3
    assert image.encoded_image_string[:4] == b'\x89PNG'


@pytest.mark.parametrize(
    'bad, match',
    [
        (dict(methods='nocam'), 'Unknown CAM method'),
        (dict(target='label'), 'target must be one of'),
        (dict(samples=dict(mdoe='first')), 'valid keys'),
        (dict(samples=dict(mode='indices')), 'non-empty'),
        (dict(phases=['train']), 'phases must be'),
        (dict(output=dict(index_format='xml')), 'index_format'),
    ],
)
def test_bad_options_fail_early_with_choices(bad, match):
    from mmpretrain.registry import HOOKS

    import mmcam_ext  # noqa: F401

    with pytest.raises((ValueError, KeyError), match=match):
        HOOKS.build(dict(HOOK, **bad))


def test_out_of_range_indices_name_the_valid_range(tmp_path):
    hook = dict(HOOK, samples=dict(mode='indices', indices=[3, 99]))
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    with pytest.raises(IndexError, match=r'0\.\.11'):
        runner.val()
