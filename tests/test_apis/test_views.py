"""Whole-image and multi-scale views: pipelines, frames, maps on the photo."""

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import TRANSFORMS

from mmcam_ext.apis import CAMEngine, CAMInferencer
from mmcam_ext.apis.data import read_test_pipeline
from mmcam_ext.apis.views import (
    CROP_STEPS,
    FIXED_INPUT_FAMILIES,
    FramedPipeline,
    InputFrame,
    ViewOptions,
    fuse_scales,
    scale_pipeline,
    to_original,
    whole_image_pipeline,
)
from mmcam_ext.errors import ConfigError, InputError, ModelError
from mmcam_ext.utils.config import config_path
from tests.helpers.bright_model import bright_model, photo
from tests.helpers.models import mmpretrain_config

#: Real configs (MMPretrain's and the demo's) -> their crop size.
CONFIGS = {
    'resnet/resnet18_8xb32_in1k.py': 224,
    'vision_transformer/vit-base-p16_32xb128-mae_in1k.py': 224,
    'deit/deit-tiny_4xb256_in1k.py': 224,
    'swin_transformer/swin-tiny_16xb64_in1k.py': 224,
    'efficientnet/efficientnet-b0_8xb32_in1k.py': 224,  # EfficientNetCrop
    'convnext/convnext-tiny_32xb128_in1k.py': 224,
    'repmlp/repmlp-base_8xb64_in1k.py': 224,  # Resize to (256, 256)
    'inception_v3/inception-v3_8xb32_in1k.py': 299,
    'demo': 224,  # pillow bicubic ResizeEdge
}


def _config(rel: str) -> Config:
    path = (
        config_path('demo/efficientnet_lite0_timm_in1k.py')
        if rel == 'demo'
        else mmpretrain_config(rel)
    )
    return Config.fromfile(path)


def _run(pipeline_cfg, img):
    framed = FramedPipeline([TRANSFORMS.build(t) for t in pipeline_cfg])
    return framed(
        dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    )


@pytest.mark.parametrize('rel', sorted(CONFIGS))
def test_whole_image_pipeline_of_real_configs(rel):
    steps = read_test_pipeline(_config(rel))
    whole = whole_image_pipeline(steps)
    types = [s['type'] for s in whole]
    assert not set(types) & set(CROP_STEPS)
    assert types.count('ResizeEdge') == 1 and 'Resize' not in types
    (resize,) = [s for s in whole if s['type'] == 'ResizeEdge']
    assert resize['scale'] == CONFIGS[rel] and resize['edge'] == 'short'
    first = next(
        s for s in steps if s['type'] in ('ResizeEdge', 'Resize', *CROP_STEPS)
    )
    for key in ('backend', 'interpolation'):
        assert resize.get(key) == first.get(key)
    assert types[-1] == 'PackInputs'
    assert steps == read_test_pipeline(_config(rel))  # not modified
    # The whole 300x200 photo comes in, aspect ratio kept.
    out = _run(whole, np.zeros((200, 300, 3), np.uint8))
    height, width = out['inputs'].shape[-2:]
    assert height == CONFIGS[rel] and abs(width / height - 1.5) < 0.01
    assert out['frame'].whole


@pytest.mark.parametrize('rel', sorted(CONFIGS))
def test_scaled_pipeline_doubles_the_input(rel):
    steps = read_test_pipeline(_config(rel))
    img = np.zeros((260, 350, 3), np.uint8)
    one = _run(steps, img)['inputs'].shape[-2:]
    two = _run(scale_pipeline(steps, 2.0), img)['inputs'].shape[-2:]
    assert tuple(two) == (2 * one[0], 2 * one[1])


def test_whole_image_pipeline_input_size_and_no_size():
    steps = [
        dict(type='ResizeEdge', scale=80),
        dict(type='CenterCrop', crop_size=64),
        dict(type='PackInputs'),
    ]
    assert whole_image_pipeline(steps, 96)[0]['scale'] == 96
    with pytest.raises(ConfigError, match='input_size'):
        whole_image_pipeline([dict(type='PackInputs')])
    assert whole_image_pipeline([dict(type='PackInputs')], 50)[0] == dict(
        type='ResizeEdge', scale=50, edge='short'
    )


def _square_centre_in_input(inputs: torch.Tensor):
    ys, xs = np.nonzero(inputs[0].numpy() > 127)
    return (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2


@pytest.mark.parametrize(
    'rel',
    [
        'resnet/resnet18_8xb32_in1k.py',
        'efficientnet/efficientnet-b0_8xb32_in1k.py',
        'repmlp/repmlp-base_8xb64_in1k.py',
        'demo',
    ],
)
def test_frame_maps_input_pixels_back_to_the_photo(rel):
    """A square's centre seen in the input lands on its photo centre."""
    steps = read_test_pipeline(_config(rel))
    box = (200, 150, 260, 190)  # x0, y0, x1, y1 in a 480x360 photo
    for pipeline in (steps, whole_image_pipeline(steps)):
        out = _run(pipeline, photo(360, 480, box))
        frame = out['frame']
        cy, cx = _square_centre_in_input(out['inputs'])
        photo_x = cx / frame.scale[1] + frame.offset[1]
        photo_y = cy / frame.scale[0] + frame.offset[0]
        assert abs(photo_x - 230) < 1.5 and abs(photo_y - 170) < 1.5
        x0, y0, x1, y1 = frame.box
        assert 0 <= x0 < 200 and 260 < x1 <= 480 and 0 <= y0 and y1 <= 360


def test_frame_box_of_a_centre_crop():
    out = _run(
        [
            dict(type='ResizeEdge', scale=80),
            dict(type='CenterCrop', crop_size=64),
            dict(type='PackInputs'),
        ],
        np.zeros((70, 90, 3), np.uint8),
    )
    # 90x70 -> 102x80 (int(80 * 90 / 70)), crop 64 at x = 19, y = 8
    frame = out['frame']
    assert frame.input_shape == (64, 64) and not frame.whole
    np.testing.assert_allclose(frame.offset, (8 * 70 / 80, 19 * 90 / 102))
    assert frame.box == (16, 7, 74, 63)


def test_unknown_resizing_step_is_refused():
    class Shrink:
        def __call__(self, data):
            data['img'] = data['img'][::2, ::2]
            return data

    with pytest.raises(ConfigError, match='Shrink'):
        FramedPipeline([Shrink()])(dict(img=np.zeros((8, 8, 3), np.uint8)))


def test_to_original_equals_interpolate_for_a_resize():
    maps = torch.rand(2, 3, 13, 17)
    frame = InputFrame((40, 50), (13, 17), (13 / 40, 17 / 50))
    ref = F.interpolate(
        maps, size=(40, 50), mode='bilinear', align_corners=False
    )
    torch.testing.assert_close(
        to_original(maps, frame), ref, atol=1e-5, rtol=0
    )


def test_to_original_places_a_crop_and_zeros_the_rest():
    maps = torch.rand(1, 6, 8)
    frame = InputFrame((20, 30), (6, 8), (1.0, 1.0), (5.0, 11.0))
    out = to_original(maps, frame)
    torch.testing.assert_close(out[0, 5:11, 11:19], maps[0])
    out[0, 5:11, 11:19] = 0
    assert out.abs().max() == 0
    assert frame.box == (11, 5, 19, 11)


def test_fuse_scales_mean_and_max():
    a, b = torch.rand(2, 5, 6), torch.rand(2, 5, 6)
    for fusion, ref in (('mean', (a + b) / 2), ('max', torch.maximum(a, b))):
        low = ref.flatten(1).min(1).values[:, None, None]
        high = ref.flatten(1).max(1).values[:, None, None]
        torch.testing.assert_close(
            fuse_scales([a, b], fusion), (ref - low) / (1e-7 + high - low)
        )
    torch.testing.assert_close(
        fuse_scales([a, b], 'max', False), torch.maximum(a, b)
    )


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(scales=(1, 0)), 'scales'),
        (dict(scales=()), 'scales'),
        (dict(scale_fusion='median'), 'scale_fusion'),
        (dict(draw_on='crop'), 'draw_on'),
        (dict(draw_on='input', scales=(1, 2)), 'draw_on'),
        (dict(input_size=3), 'input_size'),
    ],
)
def test_view_options_refuse_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        ViewOptions(**kwargs)


# ---------------------------------------------------------- bright square
INSIDE = (70, 50, 90, 70)  # inside the centre crop of a 160x120 photo
BORDER = (135, 40, 155, 60)  # cut away by the centre crop


@pytest.fixture(scope='module')
def bright():
    return bright_model()


def _peak(cam):
    y, x = np.unravel_index(cam.argmax(), cam.shape)
    return x, y


def _inside(point, box):
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


@pytest.mark.parametrize(
    'view',
    [
        ViewOptions(draw_on='original'),
        ViewOptions(whole_image=True),
        ViewOptions(whole_image=True, scales=(1, 2)),
        ViewOptions(scales=(1, 1.5), scale_fusion='max'),
    ],
)
def test_map_peaks_on_the_square_in_photo_coordinates(bright, view):
    res = CAMInferencer(bright, view=view)(
        [photo(120, 160, INSIDE), photo(120, 160, BORDER)], targets=0
    )
    for r in res:
        assert r['image'].shape == (120, 160, 3)
        assert r['maps']['GradCAM'].shape == (1, 120, 160)
    assert _inside(_peak(res[0]['maps']['GradCAM'][0]), INSIDE)
    if view.whole_image:
        assert res[0]['view_box'] is None
        assert _inside(_peak(res[1]['maps']['GradCAM'][0]), BORDER)
    else:  # the crop: the square near the border was never seen
        assert res[0]['view_box'] == (31, 12, 129, 108)
        assert not _inside((BORDER[0], BORDER[1]), res[1]['view_box'])
        assert res[1]['blank']['GradCAM'][0]


def test_draw_on_input_keeps_the_input_frame(bright):
    res = CAMInferencer(
        bright, view=ViewOptions(whole_image=True, draw_on='input')
    )(photo(120, 160, INSIDE), targets=0)[0]
    assert res['image'].shape == (64, 85, 3)  # short edge 64, aspect kept
    x, y = _peak(res['maps']['GradCAM'][0])  # pixel centres, in the photo
    assert _inside(((x + 0.5) * 160 / 85, (y + 0.5) * 120 / 64), INSIDE)


# ---------------------------------------------------------- by hand
def _by_hand(model, img, sizes, methods, fusion, topk=1):
    """Each scale through CAMEngine, maps resized to the photo, fused."""
    engine = CAMEngine(model)
    height, width = img.shape[:2]
    per_scale, targets = [], None
    for short in sizes:
        size = (
            (int(short * width / height), short)
            if width > height
            else (short, int(short * height / width))
        )
        resized = mmcv.imresize(img, size)
        inputs = torch.from_numpy(resized).permute(2, 0, 1)[None]
        data = model.data_preprocessor(dict(inputs=[inputs[0]]), False)
        res = engine.explain(
            data['inputs'], methods, targets=targets, topk=topk
        )
        targets = torch.as_tensor(res.targets)
        per_scale.append(
            {
                m: F.interpolate(
                    torch.from_numpy(v),
                    size=(height, width),
                    mode='bilinear',
                    align_corners=False,
                )[0]
                for m, v in res.maps.items()
            }
        )
    fused = {}
    for m in per_scale[0]:
        stack = torch.stack([p[m] for p in per_scale])
        value = stack.mean(0) if fusion == 'mean' else stack.amax(0)
        flat = value.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        fused[m] = (
            (value - low[:, None, None]) / (1e-7 + (high - low)[:, None, None])
        ).numpy()
    return fused, targets


@pytest.mark.parametrize('fusion', ['mean', 'max'])
def test_multi_scale_equals_each_scale_by_hand(small_setup, fusion):
    """Photos of two aspect ratios in one batch, two scales, fused."""
    inferencer = CAMInferencer(
        small_setup['config'],
        pretrained=small_setup['ckpt'],
        view=ViewOptions(whole_image=True, scales=(1, 2), scale_fusion=fusion),
    )
    rng = np.random.default_rng(1)
    imgs = [
        rng.integers(0, 255, s, dtype=np.uint8)
        for s in [(70, 90, 3), (96, 80, 3), (70, 90, 3)]
    ]
    methods = ('gradcam', 'layercam')
    res = inferencer(imgs, methods, topk=2, batch_size=3)
    for img, r in zip(imgs, res):
        fused, targets = _by_hand(
            inferencer.model, img, (64, 128), methods, fusion, topk=2
        )
        np.testing.assert_array_equal(r['targets'], targets[0])
        for name, ref in fused.items():
            assert r['maps'][name].shape == (2, *img.shape[:2])
            np.testing.assert_allclose(r['maps'][name], ref, atol=1e-4)


@pytest.mark.slow
def test_attention_rollout_at_two_scales_equals_by_hand():
    from tests.helpers.models import build_classifier

    model = build_classifier('deit-tiny_4xb256_in1k')
    model._config.test_dataloader.dataset.pipeline = [
        dict(type='ResizeEdge', scale=80),
        dict(type='CenterCrop', crop_size=64),
        dict(type='PackInputs'),
    ]
    inferencer = CAMInferencer(
        model, view=ViewOptions(whole_image=True, scales=(1, 2))
    )
    img = np.random.default_rng(2).integers(0, 255, (70, 90, 3), np.uint8)
    (r,) = inferencer(img, ('rollout', 'gradcam'))
    fused, _ = _by_hand(model, img, (64, 128), ('rollout', 'gradcam'), 'mean')
    for name, ref in fused.items():
        np.testing.assert_allclose(r['maps'][name], ref, atol=1e-4)


# ---------------------------------------------------------- fixed sizes
FIXED = {
    'LeViT': 'levit/levit-128s_8xb256_in1k.py',
    'EfficientFormer': 'efficientformer/efficientformer-l1_8xb128_in1k.py',
    'HiViT': 'hivit/hivit-tiny-p16_16xb64_in1k.py',
    'TNT': 'tnt/tnt-s-p16_16xb64_in1k.py',
}


def test_fixed_size_family_is_refused_with_the_reason():
    from tests.helpers.models import build_classifier

    model = build_classifier(mmpretrain_config(FIXED['LeViT']))
    with pytest.raises(ModelError, match='LeViT runs at') as info:
        CAMInferencer(model, view=ViewOptions(whole_image=True))
    assert 'drop whole_image' in str(info.value)
    CAMInferencer(model)  # the config's own pipeline is fine


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(FIXED))
def test_listed_families_really_refuse_other_sizes(family):
    from tests.helpers.models import build_classifier

    assert family in FIXED_INPUT_FAMILIES
    model = build_classifier(mmpretrain_config(FIXED[family]))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224), mode='tensor')
        with pytest.raises((RuntimeError, AssertionError)):
            model(torch.randn(1, 3, 224, 320), mode='tensor')
