"""Checkpoints load with ``weights_only=True`` kept; code payloads never run.

The Runner checkpoint is real: a tiny MMPretrain ``ImageClassifier`` trained
for one iteration (with a validation round, so ``save_best`` writes a second
file) by MMEngine's Runner on 16 generated images.
"""

import copy
import glob
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.runner.checkpoint import load_checkpoint as mmengine_load
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import mmcam_ext  # noqa: F401  (registers the allow-list on import)
from mmcam_ext.checkpoint import (
    SAFE_GLOBALS,
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
)

TINY_MODEL = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=8,
        base_channels=8,
        num_stages=2,
        out_indices=(1,),
        strides=(1, 2),
        dilations=(1, 1),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=16),
    data_preprocessor=dict(num_classes=2, mean=[128.0] * 3, std=[64.0] * 3),
)


def build_tiny(cfg: dict = TINY_MODEL) -> torch.nn.Module:
    return MODELS.build(copy.deepcopy(cfg))


class RandomImages(Dataset):
    """16 seeded random 32x32 uint8 images with labels 0/1."""

    metainfo = dict(classes=('even', 'odd'))

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict:
        gen = torch.Generator().manual_seed(i)
        img = torch.randint(
            0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8
        )
        return dict(inputs=img, data_samples=DataSample().set_gt_label(i % 2))


@pytest.fixture(scope='module')
def runner_ckpts(tmp_path_factory) -> dict:
    """Train one iteration with the Runner; return its checkpoint paths."""
    work_dir = str(tmp_path_factory.mktemp('runner'))
    loader = dict(
        dataset=RandomImages(),
        batch_size=8,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
    )
    runner = Runner(
        model=TINY_MODEL,
        work_dir=work_dir,
        default_scope='mmpretrain',
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=dict(type='Accuracy', topk=(1,)),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=1, val_interval=1),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=1,
                by_epoch=False,
                save_best='accuracy/top1',
            )
        ),
        log_level='WARNING',
    )
    runner.train()
    return dict(
        last=os.path.join(work_dir, 'iter_1.pth'),
        best=glob.glob(os.path.join(work_dir, 'best_*.pth'))[0],
        model=runner.model,
    )


@pytest.fixture
def without_allow_list():
    """Temporarily remove every user allow-listed global, then restore."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.add_safe_globals(saved)


@pytest.mark.parametrize('which', ['last', 'best'])
def test_runner_checkpoint_needs_allow_list(
    runner_ckpts, which, without_allow_list
):
    # Without our allow-list torch refuses it: proves the file really holds
    # the Runner's non-tensor types and that weights_only is on by default.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_ckpts[which], weights_only=True)
    found = set(
        torch.serialization.get_unsafe_globals_in_checkpoint(
            runner_ckpts[which]
        )
    )
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    allowed = {name for _, name in SAFE_GLOBALS}
    assert found <= allowed, f'not allow-listed: {found - allowed}'


@pytest.mark.parametrize('which', ['last', 'best'])
def test_runner_checkpoint_loads_weights_only(runner_ckpts, which):
    ckpt = torch.load(runner_ckpts[which], weights_only=True)
    lr = ckpt['message_hub']['log_scalars']['train/lr']
    assert isinstance(lr, HistoryBuffer)
    assert lr.mean() == pytest.approx(0.1)  # statistics methods restored
    assert set(ckpt['state_dict']) == set(runner_ckpts['model'].state_dict())


def test_mmengine_load_paths_work_after_import(runner_ckpts):
    model = build_tiny()
    mmengine_load(model, runner_ckpts['last'], map_location='cpu', strict=True)
    want = runner_ckpts['model'].state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, want[key])
    # The resume path reads the message hub as well.
    hub = _load_checkpoint(runner_ckpts['last'])['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)


def test_wrapper_loads_strictly_with_weights_only(runner_ckpts, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    model = build_tiny()
    ckpt = load_checkpoint(model, runner_ckpts['best'], strict=True)
    assert calls == [True]
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == ('even', 'odd')
    head = runner_ckpts['model'].head.fc.weight
    torch.testing.assert_close(model.head.fc.weight, head)


def test_wrapper_strict_mismatch_names_file(runner_ckpts):
    other = dict(
        TINY_MODEL,
        head=dict(type='LinearClsHead', num_classes=3, in_channels=16),
    )
    with pytest.raises(CheckpointError, match='iter_1.pth'):
        load_checkpoint(build_tiny(other), runner_ckpts['last'], strict=True)


class _Payload:
    """Pickles as a call of ``func(*args)``: runs code under plain pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: str) -> dict:
    return {
        'posix.system': _Payload(os.system, f'touch {marker}'),
        'builtins.exec': _Payload(exec, f'open({marker!r}, "w").close()'),
        'subprocess.Popen': _Payload(subprocess.Popen, ['touch', marker]),
    }


@pytest.mark.parametrize(
    'forbidden', ['posix.system', 'builtins.exec', 'subprocess.Popen']
)
@pytest.mark.parametrize('zip_format', [True, False])
def test_malicious_checkpoint_refused(tmp_path, forbidden, zip_format):
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pth')
    torch.save(
        {
            'state_dict': {'w': torch.ones(2)},
            'meta': _payloads(marker)[forbidden],
        },
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(torch.nn.Linear(2, 1), path)
    assert forbidden in str(err.value) and path in str(err.value)
    # MMEngine's own loader keeps weights_only too.
    with pytest.raises(pickle.UnpicklingError):
        mmengine_load(torch.nn.Linear(2, 1), path)
    assert not os.path.exists(marker)


def test_getattr_chain_refused(tmp_path):
    # builtins.getattr is allow-listed only as a stand-in that hands out
    # HistoryBuffer methods; any other attribute walk is refused.
    path = str(tmp_path / 'walk.pth')
    torch.save(
        {
            'x': _Payload(getattr, np.ndarray, '__class__'),
            'state_dict': {'w': torch.ones(1)},
        },
        path,
    )
    with pytest.raises(UnsafeCheckpointError, match='builtins.getattr'):
        load_checkpoint(torch.nn.Linear(1, 1), path)
    hb_path = str(tmp_path / 'hb.pth')
    torch.save({'x': _Payload(getattr, HistoryBuffer, '__init__')}, hb_path)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(hb_path, weights_only=True)


def test_missing_file_names_path(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(CheckpointError, match='not found.*nope.pth'):
        load_checkpoint(torch.nn.Linear(1, 1), path)


@pytest.mark.parametrize(
    'content', [b'', b'not a checkpoint at all', b'PK\x03\x04truncated-zip']
)
def test_corrupt_file_names_path(tmp_path, content):
    path = tmp_path / 'broken.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert str(path) in str(err.value)
    assert 'weights_only` set to `False`' not in str(err.value)
    assert not isinstance(err.value, UnsafeCheckpointError)


def test_truncated_runner_checkpoint(tmp_path, runner_ckpts):
    path = tmp_path / 'cut.pth'
    with open(runner_ckpts['last'], 'rb') as src:
        path.write_bytes(src.read()[:4096])
    with pytest.raises(CheckpointError, match='cut.pth'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))


def test_not_a_state_dict(tmp_path):
    path = str(tmp_path / 'list.pth')
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match='no state dict'):
        load_checkpoint(torch.nn.Linear(1, 1), path)


# What `import mmcam_ext` adds to torch's weights_only allow-list, by name.
# numpy's concrete dtype classes (numpy.dtypes.Float64DType, ...) are
# checked separately: their set depends on the numpy version.
EXPECTED_NAMES = {
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy.ndarray',
    'numpy.dtype',
    'builtins.getattr',
    'numpy._core.multiarray._reconstruct',
    'numpy._core.multiarray.scalar',
    'numpy.core.multiarray._reconstruct',
    'numpy.core.multiarray.scalar',
}
ADDED_BY_IMPORT = """
import json, torch
before = {id(g) for g in torch.serialization.get_safe_globals()}
import mmcam_ext
added = [g for g in torch.serialization.get_safe_globals()
         if id(g) not in before]
def row(g):
    if isinstance(g, tuple):
        return [g[1], g[0].__module__, g[0].__qualname__]
    return [None, g.__module__, g.__qualname__]
print(json.dumps([row(g) for g in added]))
"""


def test_import_allow_lists_exactly_the_listed_types():
    """In a fresh interpreter: what ``import mmcam_ext`` adds is named, is
    the object its name says (or our getattr stand-in), and is one of the
    listed types or a numpy dtype class. Torch registers its own DTensor
    types when MMEngine imports ``torch.distributed``; those are torch's."""
    import json

    out = subprocess.run(
        [sys.executable, '-c', ADDED_BY_IMPORT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = json.loads(out.strip().splitlines()[-1])
    torch_own = [e for e in entries if e[0] is None]
    assert all(module.startswith('torch.') for _, module, _ in torch_own)
    added = [e for e in entries if e[0] is not None]
    names = {name for name, _, _ in added}
    assert EXPECTED_NAMES <= names
    dtype_names = names - EXPECTED_NAMES
    assert dtype_names and all(
        n.startswith('numpy.dtypes.') for n in dtype_names
    )
    for name in dtype_names:
        cls = getattr(np.dtypes, name.rsplit('.', 1)[1])
        assert issubclass(cls, np.dtype) and cls is not np.dtype
    for name, module, qualname in added:
        if name == 'builtins.getattr':  # the restricted stand-in
            assert (module, qualname) == (
                'mmcam_ext.checkpoint',
                'history_buffer_getattr',
            )
        else:  # numpy 2 keeps numpy.core as an alias of numpy._core
            real = f'{module}.{qualname}'.replace('numpy._core', 'numpy.core')
            assert real == name.replace('numpy._core', 'numpy.core'), name
    assert len(added) == len(names)
    assert names == {name for _, name in SAFE_GLOBALS}


def _refused_objects(tmp_path) -> dict:
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub

    return {
        'numpy.load': _Payload(np.load, str(tmp_path / 'x.npy')),
        'numpy.random._pickle.__randomstate_ctor': np.random.RandomState(0),
        'numpy.ma.core._mareconstruct': np.ma.array([1.0, 2.0], mask=[0, 1]),
        'mmengine.config.config.ConfigDict': ConfigDict(a=1),
        'mmengine.logging.message_hub.MessageHub': MessageHub('hub-refused'),
    }


@pytest.mark.parametrize(
    'forbidden',
    [
        'numpy.load',
        'numpy.random._pickle.__randomstate_ctor',
        'numpy.ma.core._mareconstruct',
        'mmengine.config.config.ConfigDict',
        'mmengine.logging.message_hub.MessageHub',
    ],
)
def test_other_numpy_and_mmengine_globals_stay_refused(tmp_path, forbidden):
    path = str(tmp_path / 'other.pth')
    torch.save(
        {
            'state_dict': {'w': torch.ones(1)},
            'x': _refused_objects(tmp_path)[forbidden],
        },
        path,
    )
    found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert forbidden in found
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(forbidden)):
        load_checkpoint(torch.nn.Linear(1, 1), path)


def test_listed_numpy_types_do_load(tmp_path):
    """The contrast: arrays, scalars and dtypes are what is allowed."""
    path = str(tmp_path / 'numpy.pth')
    value = {
        'a': np.arange(3.0),
        's': np.float64(2.5),
        'd': np.dtype('int16'),
    }
    torch.save(value, path)
    got = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(got['a'], value['a'])
    assert got['s'] == 2.5 and got['d'] == np.dtype('int16')
