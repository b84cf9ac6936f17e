"""The ready configs parse, inherit their MMPretrain recipe, build the hook."""

from pathlib import Path

import pytest
from mmengine.config import Config

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


@pytest.mark.parametrize(
    'name, backbone',
    [
        ('resnet50_cam.py', 'ResNet'),
        ('vit-base-p16_cam.py', 'VisionTransformer'),
        ('deit-tiny-distilled_cam.py', 'DistilledVisionTransformer'),
        ('swin-tiny_cam.py', 'SwinTransformer'),
        ('demo_cam.py', None),
    ],
)
def test_cam_config_parses_and_builds_hook(name, backbone):
    from mmpretrain.registry import HOOKS

    import mmcam_ext  # noqa: F401
    from mmcam_ext.engine import CAMVisualizationHook

    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.custom_imports.imports == ['mmcam_ext']
    if backbone is not None:  # the recipe really came from MMPretrain
        assert cfg.model.backbone.type == backbone
        assert cfg.val_dataloader.dataset.type == 'ImageNet'
    else:
        assert cfg.model.model_name == 'tf_efficientnet_lite0'
    entries = [
        h for h in cfg.custom_hooks if h['type'] == 'CAMVisualizationHook'
    ]
    assert len(entries) == 1
    hook = HOOKS.build(entries[0])
    assert isinstance(hook, CAMVisualizationHook)
    assert hook.methods


@pytest.mark.parametrize('arch', ['cnn', 'vit', 'swin'])
def test_shapes_configs_build_models(tmp_path, arch):
    import torch
    from mmpretrain.registry import MODELS

    import mmcam_ext  # noqa: F401
    from benchmarks.datasets.shapes_train import shapes_config

    cfg = shapes_config(
        arch,
        str(tmp_path),
        epochs=3,
        extra_cfg={'train_dataloader.batch_size': 8},
    )
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.val_dataloader.dataset.data_root == str(tmp_path)
    model = MODELS.build(cfg.model)
    logits = model(torch.zeros(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 3)


def test_shapes_config_rejects_unknown_arch(tmp_path):
    from benchmarks.datasets.shapes_train import shapes_config

    with pytest.raises(ValueError, match="'cnn', 'swin', 'vit'"):
        shapes_config('mlp', str(tmp_path))
