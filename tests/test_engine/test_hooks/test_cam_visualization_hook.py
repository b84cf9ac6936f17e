"""CAMVisualizationHook in real MMEngine Runners on tiny untrained models.

Covers the config form users write, the sample options, the on-disk dump
and that the run is not disturbed. Options checked at run start and
warnings: ``test_cam_visualization_hook_options.py``; fast and general
path: ``..._paths.py``; vis backends: ``..._backends.py``; trained models,
localisation and DDP: ``..._e2e.py``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext import CAMEngine
from mmcam_ext.fileio import load_cams, load_descriptors, read_index
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
        assert isinstance(row['blank'], bool)
    maps = load_cams(folder)
    assert len(maps) == len(rows)
    for _, cam in maps:
        assert cam.shape == (32, 32) and 0 <= cam.min() <= cam.max() <= 1
    assert (folder / 'index.html').is_file()
    assert (folder / 'false_positives.csv').is_file()


@pytest.mark.parametrize('save_images', ['auto', True])
def test_every_sample_gets_pngs_only_when_asked(tmp_path, save_images):
    """``save_images='auto'`` (the default): a hook that explains every
    sample writes no per-sample PNG, the thumbnails and the index still
    cover every sample; ``True`` writes them for every sample."""
    output = None if save_images == 'auto' else dict(save_images=True)
    hook = dict(
        HOOK, samples=dict(mode='all', max_per_eval=None), output=output
    )
    runner, _ = _run_val(tmp_path, hook)
    (folder,) = _dump_dirs(runner)
    rows = read_index(folder)
    dataset = runner.val_dataloader.dataset
    assert len({r['dataset_index'] for r in rows}) == len(dataset)
    inputs = list(folder.glob('*_input.png'))
    assert all(r['input_thumb'] for r in rows)
    if save_images is True:
        assert len(inputs) == len(dataset)
        assert all((folder / r['file']).is_file() for r in rows)
    else:
        assert inputs == [] and not any(r.get('file') for r in rows)
        assert list(folder.glob('*.png')) == []


def test_stored_maps_equal_the_engines(tmp_path):
    """The hook's maps (fast path, from the loop's own forward) read back
    equal to the engine's general path on the same preprocessed batch."""
    hook = dict(
        HOOK,
        target='both',
        samples=dict(mode='all'),
        output=dict(save_raw=True, raw_dtype='float32', save_images=False),
    )
    runner, _ = _run_val(tmp_path, hook)
    folder = _dump_dirs(runner)[0]
    model = runner.model
    engine = CAMEngine(model, fast_path=False)
    checked = 0
    for batch in runner.val_dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        samples = batch['data_samples']
        with torch.no_grad():
            preds = model(inputs, mode='tensor').argmax(1)
        gts = [int(s.gt_label[0]) for s in samples]
        res = engine.explain(
            inputs,
            ['gradcam', 'layercam'],
            targets=np.stack([preds.numpy(), gts], 1),
        )
        for j, sample in enumerate(samples):
            for k, kind in enumerate(('pred', 'gt')):
                for method in ('GradCAM', 'LayerCAM'):
                    ((row, cam),) = load_cams(
                        folder, sample.sample_idx, method, kind
                    )
                    assert row['target'] == int(res.targets[j, k])
                    np.testing.assert_allclose(
                        cam, res.maps[method][j, k], atol=1e-5
                    )
                    checked += 1
    assert checked == 12 * 2 * 2


@pytest.mark.parametrize('sign', [-1, 1])
def test_blank_column_marks_maps_without_positive_evidence(tmp_path, sign):
    """At the last stage (post-ReLU activations) a head whose weights are
    all negative gives Grad-CAM maps <= 0 everywhere: blank after the
    ReLU; all-positive weights give none."""
    hook = dict(HOOK, methods='gradcam', samples=dict(mode='all'))
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    fc = runner.model.head.fc
    with torch.no_grad():
        fc.weight.copy_(sign * fc.weight.abs())
    runner.val()
    rows = read_index(_dump_dirs(runner)[0])
    assert len(rows) == 12
    assert [r['blank'] for r in rows] == [sign < 0] * 12


@pytest.mark.parametrize(
    'samples, expect',
    [
        (dict(mode='first', num=3), [0, 1, 2]),
        (dict(mode='indices', indices=[7, 2, 11]), [2, 7, 11]),
        (dict(mode='all', classes=['square']), 'square'),
        (dict(mode='all', max_per_eval=5), [0, 1, 2, 3, 4]),
        (dict(mode='all', max_per_eval=None), list(range(12))),
        (dict(mode='first', num=20, max_per_eval=None), list(range(12))),
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


@pytest.mark.parametrize(
    'methods',
    [
        ['gradcam', 'layercam'],
        ['gradcam', 'attention_rollout'],
        ['gradcam', 'grad_attention', 'attention_relevance'],
    ],
)
def test_vit_run_undisturbed(tmp_path, methods):
    """The in-loop gradient path runs the ViT's tail with grad inside the
    loop's forward (and a general-path method beside it): metrics, weights,
    ``.grad`` and flags stay bit-identical; no torch hook remains."""
    hook = dict(HOOK, methods=methods, samples=dict(mode='all'))
    runner = Runner.from_cfg(tiny_cfg(tmp_path / 'on', arch='vit', hook=hook))
    model = runner.model
    for p in list(model.parameters())[::4]:
        p.grad = torch.randn_like(p)
    before, handles = model_state(model), hook_count(model)
    with_hook = runner.val()
    assert hook_count(model) == handles and torch.is_grad_enabled()
    model.train(False)
    before['training'] = {n: m.training for n, m in model.named_modules()}
    assert_same_state(before, model_state(model))
    off = Runner.from_cfg(tiny_cfg(tmp_path / 'off', arch='vit'))
    off.model.load_state_dict(model.state_dict())
    assert with_hook == off.val()
    assert len(read_index(_dump_dirs(runner)[0])) == 12 * len(methods)


def test_vit_attention_maps_in_the_loop_equal_the_engines(tmp_path):
    """GradCAM, grad-attention and rollout from the loop's own forward
    (one capture, one backward) read back equal to the general path, their
    evidence descriptors (on with the raw maps) too."""
    methods = ['gradcam', 'grad_attention', 'attention_rollout']
    hook = dict(
        HOOK,
        methods=methods,
        samples=dict(mode='all'),
        output=dict(save_raw=True, raw_dtype='float32', save_images=False),
    )
    runner, _ = _run_val(tmp_path, hook, arch='vit')
    (engine_of_hook,) = [
        h._engine for h in runner.hooks if hasattr(h, '_engine')
    ]
    assert engine_of_hook.last_path.startswith('in-loop attention')
    folder = _dump_dirs(runner)[0]
    model = runner.model
    engine = CAMEngine(model, fast_path=False)
    names = ('GradCAM', 'GradAttention', 'AttentionRollout')
    descriptors = {}
    for method in names:
        rows, desc = load_descriptors(folder, method, 'pred')
        descriptors[method] = {
            int(r['dataset_index']): d for r, d in zip(rows, desc)
        }
    checked = 0
    for batch in runner.val_dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        res = engine.explain(inputs, methods, descriptors=True)
        for j, sample in enumerate(batch['data_samples']):
            for method in names:
                ((row, cam),) = load_cams(
                    folder, sample.sample_idx, method, 'pred'
                )
                assert row['target'] == int(res.targets[j, 0])
                np.testing.assert_allclose(
                    cam, res.maps[method][j, 0], atol=1e-4, err_msg=method
                )
                stored = descriptors[method][sample.sample_idx]
                np.testing.assert_allclose(  # stored as float16
                    stored,
                    res.descriptors[method][j, 0],
                    rtol=2e-3,
                    atol=2e-3,
                    err_msg=method,
                )
                checked += 1
    assert checked == 12 * 3


@pytest.mark.slow
def test_vit_training_identical_with_and_without_hook(tmp_path):
    states = []
    for sub, hook in (
        ('on', dict(HOOK, samples=dict(mode='all'))),
        ('off', None),
    ):
        cfg = tiny_cfg(tmp_path / sub, arch='vit', epochs=2, hook=hook)
        runner = Runner.from_cfg(cfg)
        runner.train()
        states.append(runner.model.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
