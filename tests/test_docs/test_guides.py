"""The advanced guides' examples run as written and do what they say.

Each guide's ``python`` blocks are read from the Markdown and executed in
order in one namespace, so the page and this test cannot drift apart; the
checks below then compare what the example built with an independent
plain-torch computation.
"""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mmcam_ext.registry import CAM_METHODS, OUTPUT_WRITERS, TARGET_RESOLVERS

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / 'docs' / 'advanced_guides'
REGISTRIES = (CAM_METHODS, TARGET_RESOLVERS, OUTPUT_WRITERS, MODELS)


def python_blocks(path: Path):
    """The fenced ``python`` blocks of a Markdown file, in order."""
    return re.findall(r'^```python\n(.*?)^```', path.read_text(), re.M | re.S)


@pytest.fixture
def run_guide():
    """Execute a guide's blocks; undo its registrations afterwards."""
    module = 'docs_guide'  # the __module__ of the classes a guide defines

    def run(name: str) -> dict:
        blocks = python_blocks(GUIDES / name)  # name may be '../x.md'
        assert blocks, f'{name} has no python blocks'
        namespace = {'__name__': module}
        for block in blocks:
            exec(compile(block, str(GUIDES / name), 'exec'), namespace)
        return namespace

    yield run
    for reg in REGISTRIES:
        for key, cls in list(reg.module_dict.items()):
            if getattr(cls, '__module__', None) == module:
                reg._module_dict.pop(key)


def _normalise(maps):
    flat = maps.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.view_as(maps)


def _final_map(raw, size):
    """ReLU, normalise, bilinear resize, normalise: ``(B, h, w)`` raw."""
    up = F.interpolate(
        _normalise(raw.clamp(min=0))[:, None],
        size=size,
        mode='bilinear',
        align_corners=False,
    )[:, 0]
    return _normalise(up)


def _acts_and_top1_grads(model, layer_name, inputs):
    """The layer's output and d(top-1 logit)/d(output), plain autograd."""
    layer = dict(model.named_modules())[layer_name]
    seen = {}
    handle = layer.register_forward_hook(
        lambda m, a, out: seen.setdefault('a', out)
    )
    try:
        logits = model(inputs, mode='tensor')
    finally:
        handle.remove()
    top1 = logits.argmax(dim=1, keepdim=True)
    score = logits.gather(1, top1).sum()
    (grads,) = torch.autograd.grad(score, seen['a'])
    return seen['a'].detach(), grads


def test_add_cam_method_guide(run_guide):
    ns = run_guide('add_cam_method.md')
    assert CAM_METHODS.get('PositiveGradCAM') is ns['PositiveGradCAM']
    assert isinstance(ns['method'], ns['PositiveGradCAM'])
    result, model, inputs = ns['result'], ns['model'], ns['inputs']
    (layer,) = result.target_layers
    acts, grads = _acts_and_top1_grads(model, layer, inputs)
    weights = grads.mean(dim=(2, 3), keepdim=True).clamp(min=0)
    want = _final_map((weights * acts).sum(dim=1), inputs.shape[-2:])
    got = torch.from_numpy(ns['cams'])
    assert got.shape == (2, 1, 96, 64)
    assert not result.blank['PositiveGradCAM'].any()
    torch.testing.assert_close(got[:, 0], want, atol=1e-5, rtol=0)
    # The clamp matters here: plain GradCAM gives another map.
    assert not torch.allclose(
        got, torch.from_numpy(result.maps['GradCAM']), atol=1e-3
    )


def test_add_backbone_family_guide(run_guide):
    ns = run_guide('add_backbone_family.md')
    from mmcam_ext.resolvers import find_resolver

    model, inputs, result = ns['model'], ns['inputs'], ns['result']
    assert type(find_resolver(model)).__name__ == 'TinyTokenNetResolver'
    assert result.target_layers == ['backbone.norm']
    tokens, grads = _acts_and_top1_grads(model, 'backbone.norm', inputs)

    def grid(t):  # drop the class token, fold the 8x12 patch grid
        return t[:, 1:].reshape(2, 8, 12, -1).permute(0, 3, 1, 2)

    acts, grads = grid(tokens), grid(grads)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    want = _final_map((weights * acts).sum(dim=1), inputs.shape[-2:])
    got = torch.from_numpy(ns['cams'])
    assert got.shape == (2, 1, 64, 96)
    assert not result.blank['GradCAM'].any()
    assert (
        got.flatten(1).max(1).values - got.flatten(1).min(1).values > 0.5
    ).all()
    torch.testing.assert_close(got[:, 0], want, atol=1e-5, rtol=0)


def test_add_output_writer_guide(run_guide):
    ns = run_guide('../outputs.md')
    assert OUTPUT_WRITERS.get('PeakOutput') is ns['PeakOutput']
    rows, maps = ns['rows'], ns['maps']
    assert len(rows) == 3
    lines = (Path(ns['folder']) / 'peaks.csv').read_text().splitlines()
    for row, line in zip(rows, lines):
        cam = maps[row['dataset_index'], 0]
        y, x = divmod(int(cam.argmax()), cam.shape[1])
        assert (row['peak_y'], row['peak_x']) == (y, x)
        assert line == f'{row["dataset_index"]},GradCAM,{y},{x}'
        assert row['raw_file']  # the built-in writers ran too
