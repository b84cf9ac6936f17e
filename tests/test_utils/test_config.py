"""The plugin's configs and tools, found through ``mmcam_ext/.mim``.

Also the MMEngine fact that docs/get_started.md documents:
``_base_ = 'mmcam_ext::...'`` is refused (only OpenMMLab's own packages are
accepted), while a ``_base_`` given as the absolute path from
:func:`config_path` works.
"""

from pathlib import Path

import pytest
from mmengine.config import Config

import mmcam_ext
from mmcam_ext.errors import ConfigError
from mmcam_ext.utils.config import config_path, list_configs, tool_path

REPO_CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
DEMO = 'demo/efficientnet_lite0_timm_in1k.py'


def test_every_repository_config_is_reachable():
    want = sorted(
        str(p.relative_to(REPO_CONFIGS)) for p in REPO_CONFIGS.rglob('*.py')
    )
    assert list_configs() == want
    for rel in want:
        path = Path(config_path(rel))
        assert path.is_absolute()
        assert path.read_bytes() == (REPO_CONFIGS / rel).read_bytes()
    assert mmcam_ext.config_path is config_path


def test_unknown_config_lists_the_available_ones():
    with pytest.raises(
        ConfigError, match='No configs file.*available:.*demo_cam.py'
    ):
        config_path('nosuch_cam.py')


def test_tool_path_finds_the_shipped_tools():
    assert Path(tool_path('vis_cam')).name == 'vis_cam.py'
    with pytest.raises(ConfigError, match='vis_cam.py'):
        tool_path('vis-cam')


def test_missing_mim_folder_says_how_to_fix(monkeypatch, tmp_path):
    from mmcam_ext.utils import config

    monkeypatch.setattr(config, 'mim_root', lambda: tmp_path / '.mim')
    with pytest.raises(ConfigError, match='pip install -e'):
        config_path(DEMO)
    assert config.list_configs() == []


def test_mmengine_refuses_the_mmcam_ext_scope(tmp_path):
    cfg = tmp_path / 'scoped.py'
    cfg.write_text(f"_base_ = ['mmcam_ext::{DEMO}']\n")
    with pytest.raises(
        AssertionError, match='does not support to load mmcam_ext'
    ):
        Config.fromfile(str(cfg))


def test_base_by_absolute_path_inherits_and_imports_the_plugin(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import HOOKS

    from mmcam_ext.engine import CAMVisualizationHook

    cfg_file = tmp_path / 'user_cfg.py'
    cfg_file.write_text(
        f'_base_ = [{config_path(DEMO)!r}]\n'
        'custom_hooks = [\n'
        "    dict(type='CAMVisualizationHook', methods=['gradcam'])]\n"
    )
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.model.model_name == 'tf_efficientnet_lite0'  # inherited
    assert cfg.custom_imports.imports == ['mmcam_ext']
    init_default_scope(cfg.default_scope)
    assert isinstance(HOOKS.build(cfg.custom_hooks[0]), CAMVisualizationHook)
