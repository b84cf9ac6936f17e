"""``python -m mmcam_ext {vis_cam,demo,config}``."""

import subprocess
import sys

import pytest

from mmcam_ext.__main__ import COMMANDS, main
from mmcam_ext.utils.config import config_path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'mmcam_ext', *args],
        capture_output=True,
        text=True,
    )


def test_module_runs_the_vis_cam_cli():
    proc = _run('vis_cam', '--help')
    assert proc.returncode == 0, proc.stderr
    assert '--target-layers' in proc.stdout and 'checkpoint' in proc.stdout


def test_config_prints_the_absolute_path(capsys):
    assert main(['config', 'demo_cam.py']) == 0
    assert capsys.readouterr().out.strip() == config_path('demo_cam.py')
    assert main(['config']) == 0
    assert 'demo/efficientnet_lite0_timm_in1k.py' in capsys.readouterr().out


def test_unknown_config_is_an_error(capsys):
    assert main(['config', 'nosuch.py']) == 2
    assert 'available' in capsys.readouterr().err


@pytest.mark.parametrize('argv', [[], ['frobnicate']])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert 'usage: python -m mmcam_ext' in captured.out + captured.err


def test_commands_dispatch_with_their_arguments(monkeypatch):
    seen = []
    for name in ('vis_cam', 'demo'):
        monkeypatch.setitem(
            COMMANDS, name, lambda argv, n=name: seen.append((n, argv)) or 0
        )
    assert main(['demo', '--work-dir', 'x']) == 0
    assert main(['vis-cam', 'img.png']) == 0  # a dash works too
    assert seen == [('demo', ['--work-dir', 'x']), ('vis_cam', ['img.png'])]
