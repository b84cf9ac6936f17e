"""grad-cam is optional: the native engine runs without it, and a library
method is refused with what to install when grad-cam is absent or too old.

Run in the dev venv (grad-cam 1.5.7), in CI's packaging stage against the
installed wheel without grad-cam and again with grad-cam 1.4.8.
"""

import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from packaging.version import Version

from mmcam_ext import CAMEngine
from mmcam_ext.errors import MethodError
from mmcam_ext.methods import build_method
from mmcam_ext.methods import grad_cam_lib as lib
from tests.helpers.attention_models import tiny_classifier
from tests.helpers.grad_cam import GRADIENT_FAMILY, LIB_CLASS, has_lib_class
from tests.helpers.models import build_classifier

NATIVE_CNN = [*GRADIENT_FAMILY, 'ScoreCAM']
NATIVE_VIT = ['AttentionRollout', 'GradAttention', 'AttentionRelevance']

# Runs in a fresh interpreter where ``import pytorch_grad_cam`` fails as if
# it were not installed; prints the maps and the refusals as JSON.
NO_GRAD_CAM = """
import json, sys
sys.modules['pytorch_grad_cam'] = None  # find_spec -> None, import fails
import torch
import mmcam_ext, mmcam_ext.cli.vis_cam, mmcam_ext.cli.demo  # noqa: F401
from mmcam_ext import CAMEngine
from mmcam_ext.methods import build_method
from tests.helpers.attention_models import tiny_classifier
from tests.helpers.models import build_classifier

torch.manual_seed(0)
cnn = build_classifier('resnet18_8xb32_in1k')
x = torch.randn(2, 3, 64, 64)
out = {{'maps': {{}}, 'refused': {{}}}}
res = CAMEngine(cnn, ['backbone.layer4']).explain(x, {cnn}, targets=[1, 2])
torch.manual_seed(0)
vit = tiny_classifier('vit')
res_vit = CAMEngine(vit).explain(torch.randn(2, 3, 32, 32), {vit},
                                 targets=[0, 2])
for r in (res, res_vit):
    out['maps'].update({{k: v.tolist() for k, v in r.maps.items()}})
for name in {lib}:
    try:
        build_method(name)
    except Exception as err:
        out['refused'][name] = [type(err).__name__, str(err)]
out['imported'] = sys.modules['pytorch_grad_cam'] is not None
print(json.dumps(out))
"""


@pytest.fixture(scope='module')
def without_grad_cam():
    """Maps and refusals of a run in which grad-cam cannot be imported."""
    code = NO_GRAD_CAM.format(
        cnn=NATIVE_CNN, vit=NATIVE_VIT, lib=sorted(LIB_CLASS)
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_native_methods_run_without_grad_cam(without_grad_cam):
    """Same maps as here, where grad-cam may be installed: the native
    methods never use it."""
    assert without_grad_cam['imported'] is False
    torch.manual_seed(0)
    cnn = build_classifier('resnet18_8xb32_in1k')
    x = torch.randn(2, 3, 64, 64)
    res = CAMEngine(cnn, ['backbone.layer4']).explain(
        x, NATIVE_CNN, targets=[1, 2]
    )
    torch.manual_seed(0)
    vit = tiny_classifier('vit')
    res_vit = CAMEngine(vit).explain(
        torch.randn(2, 3, 32, 32), NATIVE_VIT, targets=[0, 2]
    )
    want = {**res.maps, **res_vit.maps}
    assert sorted(without_grad_cam['maps']) == sorted(want)
    for name, maps in want.items():
        got = np.asarray(without_grad_cam['maps'][name], dtype=np.float32)
        np.testing.assert_allclose(got, maps, atol=1e-6, err_msg=name)
    assert all(np.ptp(m) > 0 for m in want.values())


def test_library_methods_refused_without_grad_cam(without_grad_cam):
    assert sorted(without_grad_cam['refused']) == sorted(LIB_CLASS)
    for name, (kind, message) in without_grad_cam['refused'].items():
        assert kind == 'MethodError', message
        assert name in message and 'not installed' in message
        assert 'pip install "grad-cam>=1.4,<1.6"' in message
        assert 'mmcam_ext[gradcam]' in message


@pytest.mark.parametrize('method', sorted(LIB_CLASS))
def test_installed_release_builds_or_names_the_release(method):
    """Against the real grad-cam: each method builds where its class
    exists, else is refused naming the release that adds it (1.4.8 in CI
    lacks five of them)."""
    if not has_lib_class('GradCAM'):
        pytest.skip('grad-cam is not installed (checked above)')
    cls_name = LIB_CLASS[method]
    if has_lib_class(cls_name):
        assert build_method(method).name == method
        return
    added = lib.FIRST_RELEASE[cls_name]
    with pytest.raises(MethodError) as err:
        build_method(method)
    text = str(err.value)
    assert f'added in grad-cam {added}' in text
    assert f'grad-cam {lib.grad_cam_version()} lacks' in text
    assert f'pip install "grad-cam>={added},<1.6"' in text


def test_first_release_table_agrees_with_installed_release():
    """Classes listed as added after the installed release are missing
    from it, and those added up to it are present."""
    version = lib.grad_cam_version()
    if version is None:
        pytest.skip('grad-cam is not installed')
    for cls_name, added in lib.FIRST_RELEASE.items():
        expected = Version(version) >= Version(added)
        assert has_lib_class(cls_name) is expected, (cls_name, version)


def test_alias_resolves_before_the_library_check(monkeypatch):
    """``KPCA-CAM`` finds KPCACAM, whose refusal names its release."""
    fake = types.ModuleType('pytorch_grad_cam')
    fake.__spec__ = types.SimpleNamespace(name='pytorch_grad_cam')
    fake.GradCAM = object  # a 1.4-like library without KPCA_CAM
    monkeypatch.setitem(sys.modules, 'pytorch_grad_cam', fake)
    monkeypatch.setattr(lib, 'grad_cam_version', lambda: '1.4.8')
    with pytest.raises(MethodError, match='KPCACAM needs.*KPCA_CAM') as err:
        build_method('KPCA-CAM')
    assert 'grad-cam 1.4.8 lacks; it was added in grad-cam 1.5.4' in str(
        err.value
    )
