"""Options are checked when the run starts; later problems are warnings.

A wrong index, class name or layer must stop the run *before training*
(not after an epoch); a problem that shows only while explaining (a method
failing on a batch) is logged and the run goes on, unless ``strict``.
"""

from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext.errors import InputError, LayerNotFoundError
from mmcam_ext.fileio import read_index
from mmcam_ext.methods.base import LayerMapMethod
from mmcam_ext.registry import CAM_METHODS
from tests.helpers.runner import tiny_cfg

HOOK = dict(type='CAMVisualizationHook', methods=['gradcam'])


class FailingTestCAM(LayerMapMethod):
    """Raises while explaining: a problem seen only during the run."""

    def layer_map(self, acts, grads, eigen_smooth):
        raise RuntimeError('the failing test method failed')


@pytest.fixture
def failing_method():
    CAM_METHODS.register_module(module=FailingTestCAM)
    yield 'FailingTestCAM'
    CAM_METHODS.module_dict.pop('FailingTestCAM')


@pytest.mark.parametrize(
    'changes, error, match',
    [
        (
            dict(explain=dict(target_layers=['backbone.no_such_layer'])),
            LayerNotFoundError,
            r'no_such_layer.*Close matches: backbone\.layer4',
        ),
        (
            dict(samples=dict(mode='indices', indices=[3, 99])),
            InputError,
            r'samples\.indices \[99\] out of range.*0\.\.11',
        ),
        (
            dict(samples=dict(mode='all', classes=['square', 'hexagon'])),
            InputError,
            r"no class 'hexagon'.*'circle', 'square', 'triangle'",
        ),
        (
            dict(samples=dict(mode='all', classes=[5])),
            InputError,
            r'class index 5 is out of range.*3 classes',
        ),
    ],
)
def test_wrong_options_fail_before_training(tmp_path, changes, error, match):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=dict(HOOK, **changes)))
    seen = []
    runner.model.register_forward_pre_hook(
        lambda m, a: seen.append(m.training)
    )
    with pytest.raises(error, match=match):
        runner.train()
    assert runner.iter == 0 and runner.epoch == 0
    assert True not in seen  # no training forward ran
    assert not list(Path(runner.work_dir).glob('*.pth'))


def test_wrong_options_fail_before_validation(tmp_path):
    hook = dict(HOOK, samples=dict(mode='indices', indices=[12]))
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    with pytest.raises(InputError, match='0..11'):
        runner.val()
    assert not Path(runner.work_dir, 'cam').exists()


def test_a_problem_seen_later_is_a_warning_and_the_run_goes_on(
    tmp_path, failing_method
):
    hook = dict(HOOK, methods=['gradcam', failing_method])
    runner = Runner.from_cfg(tiny_cfg(tmp_path, epochs=1, hook=hook))
    runner.train()  # not stopped
    clean = Runner.from_cfg(tiny_cfg(tmp_path / 'clean', epochs=1))
    clean.train()
    assert runner.message_hub.get_info('val_metrics', None) == (
        clean.message_hub.get_info('val_metrics', None)
    )
    for key, value in clean.model.state_dict().items():
        assert torch.equal(value, runner.model.state_dict()[key]), key
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'CAMVisualizationHook skipped a batch' in log
    assert 'the failing test method failed' in log
    (folder,) = Path(runner.work_dir, 'cam').iterdir()
    assert read_index(folder) == []
    assert (folder / 'index.html').is_file()


def test_strict_mode_reraises(tmp_path, failing_method):
    hook = dict(HOOK, strict=True, methods=[failing_method])
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    with pytest.raises(RuntimeError, match='failing test method'):
        runner.val()


@pytest.mark.parametrize(
    'bad, match',
    [
        (dict(methods='nocam'), 'Unknown CAM method'),
        (dict(methods=[]), 'methods is empty'),
        (dict(target='label'), 'target must be one of'),
        (dict(samples=dict(mdoe='first')), 'valid keys'),
        (dict(samples=dict(mode='indices')), 'non-empty'),
        (dict(samples=dict(mode='indices', indices=[-1])), 'ints >= 0'),
        (dict(samples=dict(max_per_eval=0)), 'max_per_eval must be'),
        (dict(samples=dict(max_per_eval=2.5)), 'max_per_eval must be'),
        (dict(samples=dict(num=True)), 'samples.num must be'),
        (dict(phases=['train']), 'phases must be'),
        (dict(interval=0), 'interval must be'),
        (dict(output=dict(index_format='xml')), 'index_format'),
        (dict(output=dict(raw_dtype='int8')), 'raw_dtype'),
        (dict(output=dict(raw_downsample=0)), 'raw_downsample'),
        (dict(output=dict(backend_samples=-1)), 'backend_samples'),
        (dict(output=dict(save_images='yes')), 'save_images must be'),
    ],
)
def test_bad_options_fail_when_the_hook_is_built(bad, match):
    from mmpretrain.registry import HOOKS

    import mmcam_ext  # noqa: F401

    with pytest.raises((ValueError, KeyError), match=match):
        HOOKS.build(dict(HOOK, **bad))
