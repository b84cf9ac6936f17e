"""What the hook's dump holds beyond the maps: descriptors equal to a
recomputation, the model facts pattern mining compares, the streaming
index, and ``python -m mmcam_ext patterns`` on a real hook dump."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmcam_ext import CAMEngine
from mmcam_ext.__main__ import main as cli_main
from mmcam_ext.analysis import dump_signature
from mmcam_ext.fileio import CAMDump, load_descriptors, read_shard
from mmcam_ext.utils.descriptors import DESCRIPTOR_DIM, evidence_descriptors
from mmcam_ext.utils.model import get_module, model_fingerprint
from tests.helpers.runner import tiny_cfg

HOOK = dict(
    type='CAMVisualizationHook',
    methods=['gradcam', 'layercam'],
    samples=dict(mode='all'),
    output=dict(save_raw=True, raw_dtype='float32', save_images=False),
)


def _run_val(tmp_path, hook, **kw):
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook, **kw))
    runner.val()
    (folder,) = Path(runner.work_dir, 'cam').iterdir()
    return runner, folder


def _layer_maps(model, layer, inputs, targets):
    """Activations and layer-resolution Grad-CAM / LayerCAM maps of
    ``targets`` (one class per sample), written out in plain torch."""
    got = []
    handle = get_module(model, layer).register_forward_hook(
        lambda m, i, o: got.append(o)
    )
    try:
        with torch.enable_grad():
            logits = model(inputs, mode='tensor')
            score = logits.gather(1, torch.as_tensor(targets)[:, None])
            (grad,) = torch.autograd.grad(score.sum(), got[0])
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    acts = got[0].detach()
    return acts, {
        'GradCAM': (grad.mean((2, 3), keepdim=True) * acts).sum(1),
        'LayerCAM': (grad.clamp(min=0) * acts).sum(1),
    }


def test_descriptors_equal_a_recomputation(tmp_path):
    runner, folder = _run_val(tmp_path, dict(HOOK, target='both'))
    model = runner.model
    meta = json.loads((folder / 'index.json').read_text())
    (layer,) = meta['target_layers']
    assert meta['model_fingerprint'] == model_fingerprint(model)
    dump = CAMDump(folder)
    rows, desc = load_descriptors(folder)
    assert desc.shape == (len(dump.rows), DESCRIPTOR_DIM) == (12 * 4, 256)
    where = {
        (r['dataset_index'], r['method'], r['target_kind']): i
        for i, r in enumerate(rows)
    }
    checked = 0
    model.eval()
    for batch in runner.val_dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        samples = batch['data_samples']
        for kind in ('pred', 'gt'):
            keys = [(s.sample_idx, 'GradCAM', kind) for s in samples]
            targets = [rows[where[key]]['target'] for key in keys]
            acts, maps = _layer_maps(model, layer, inputs, targets)
            for method, raw in maps.items():
                want = evidence_descriptors(acts, raw).numpy()
                for j, sample in enumerate(samples):
                    i = where[(sample.sample_idx, method, kind)]
                    np.testing.assert_allclose(
                        desc[i], want[j], rtol=1e-2, atol=2e-3
                    )
                    checked += 1
    assert checked == 12 * 2 * 2
    sig = dump_signature(folder, rows, 'GradCAM')
    assert sig['target_layers'] == [layer]
    assert sig['model'] == model_fingerprint(model)


def test_index_rows_stream_into_sqlite_and_match_the_final_index(tmp_path):
    _, folder = _run_val(tmp_path, HOOK)
    meta, rows, expected = read_shard(folder / 'index.sqlite')
    final = json.loads((folder / 'index.json').read_text())
    assert sorted(expected) == list(range(12))
    assert meta['methods'] == ['GradCAM', 'LayerCAM']
    key = lambda r: (r['dataset_index'], r['method'], r['target_kind'])  # noqa
    assert sorted(rows, key=key) == sorted(final['rows'], key=key)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a finished dump: no warning
        assert not CAMDump(folder).partial


def test_descriptors_off(tmp_path):
    hook = dict(HOOK, output=dict(HOOK['output'], descriptors=False))
    _, folder = _run_val(tmp_path, hook)
    assert not (folder / 'descriptors').exists()
    assert all(not r['desc_file'] for r in CAMDump(folder).rows)


def test_patterns_run_on_a_hook_dump(tmp_path, capsys):
    pytest.importorskip('sklearn')
    hook = dict(HOOK, methods=['gradcam'])
    _, folder = _run_val(tmp_path, hook, per_class=12)
    code = cli_main(
        ['patterns', str(folder), '--errors', 'all', '--min-size', '1']
    )
    assert code == 0, capsys.readouterr().err
    doc = json.loads((folder / 'patterns' / 'patterns.json').read_text())
    indices = {r['dataset_index'] for r in CAMDump(folder).rows}
    for pattern in doc['patterns']:
        assert set(pattern['samples']) <= indices


def test_signed_maps_are_stored_as_float32_and_equal_the_engines(tmp_path):
    hook = dict(HOOK, methods=['gradcam'])
    hook['output'] = dict(HOOK['output'], signed=True, raw_dtype='float16')
    runner, folder = _run_val(tmp_path, hook)
    dump = CAMDump(folder)
    (rel,) = {r['raw_file'] for r in dump.rows}
    assert np.load(folder / rel, mmap_mode='r').dtype == np.float32
    model = runner.model.eval()
    engine = CAMEngine(model, fast_path=False)
    negative = 0
    for batch in runner.val_dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        res = engine.explain(inputs, ['gradcam'])
        for j, sample in enumerate(batch['data_samples']):
            (row,) = dump.select(sample.sample_idx)
            want = res.raw_maps['GradCAM'][j, 0]
            np.testing.assert_allclose(dump.load(row), want, atol=1e-5)
            negative += int((want < 0).any())
    assert negative  # signed maps, not the [0, 1] ones
