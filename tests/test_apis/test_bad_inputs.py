"""Bad inputs through the API: each a typed error with a clear message, or a
documented correct result, never a traceback deep in torch or a silent
wrong map.

The main table holds one row per bad input: the call, the exception type
(every one derives from ``MMCamError``) and a fragment of its message.
Inputs with a documented handling (a string ``methods``, grayscale and
float 0-255 arrays, a literal ``photo[1].png``, skipped bad images, blank
maps, batch chunking) are checked against an independent result.
"""

import os.path as osp

import numpy as np
import pytest
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.apis import CAMInferencer, list_images
from mmcam_ext.apis.data import InputLimits, load_image
from mmcam_ext.apis.inferencer import load_config
from mmcam_ext.checkpoint import compare_keys, load_checkpoint
from mmcam_ext.errors import (
    CheckpointError,
    ConfigError,
    ImageLoadError,
    InputError,
    LayerNotFoundError,
    LayoutError,
    MethodError,
    MMCamError,
    ModelError,
    NumericalError,
    PartialCheckpointWarning,
    ResourceLimitError,
    TargetError,
)
from tests.helpers.bad_inputs import make_bad_inputs

IMG = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def p(tmp_path_factory):
    return make_bad_inputs(str(tmp_path_factory.mktemp('bad_api')))


@pytest.fixture(scope='module')
def inf(p):
    return CAMInferencer(p['config'], p['ckpt'])


@pytest.fixture
def x():
    return torch.randn(2, 3, 64, 64)


def _cuda_missing():
    return not torch.cuda.is_available()


# (id, call(p, inf, x), exception type, message fragment)
CASES = [
    # --- models, configs, checkpoints, devices
    (
        'model None',
        lambda p, i, x: CAMInferencer(None),
        ModelError,
        'got NoneType',
    ),
    ('model int', lambda p, i, x: CAMInferencer(3), ModelError, 'config path'),
    (
        'model without config',
        lambda p, i, x: CAMInferencer(torch.nn.Linear(2, 2)),
        ModelError,
        'no config',
    ),
    (
        'config missing',
        lambda p, i, x: CAMInferencer('nope.py'),
        ConfigError,
        "'nope.py' does not exist",
    ),
    (
        'config is a folder',
        lambda p, i, x: CAMInferencer(p['images']),
        ConfigError,
        'is a directory',
    ),
    (
        'config is the checkpoint',
        lambda p, i, x: CAMInferencer(p['ckpt']),
        ConfigError,
        'is it the checkpoint',
    ),
    (
        'config syntax error',
        lambda p, i, x: CAMInferencer(p['config_syntax']),
        ConfigError,
        'Cannot read config',
    ),
    (
        'config without test pipeline',
        lambda p, i, x: CAMInferencer(p['config_no_test']),
        ConfigError,
        'test_dataloader.dataset.pipeline',
    ),
    (
        'unknown model name',
        lambda p, i, x: CAMInferencer('resnet_foo'),
        ConfigError,
        'neither a config file nor a model name',
    ),
    (
        'self-supervised config',
        lambda p, i, x: CAMInferencer(p['config_ssl']),
        ModelError,
        'not a classifier',
    ),
    (
        'self-supervised config without a test pipeline',
        lambda p, i, x: CAMInferencer(p['config_ssl_as_shipped']),
        ModelError,
        'SimCLR is not a classifier',
    ),
    (
        'cfg_options that do not apply',
        lambda p, i, x: load_config(
            p['config'], {'test_dataloader.dataset.pipeline.9.scale': 1}
        ),
        ConfigError,
        'do not apply',
    ),
    (
        'typo in an override',
        lambda p, i, x: CAMInferencer(
            load_config(p['config'], {'model.head.num_clases': 3})
        ),
        ConfigError,
        'num_clases',
    ),
    (
        'checkpoint missing',
        lambda p, i, x: CAMInferencer(p['config'], 'nope.pth'),
        CheckpointError,
        'does not exist',
    ),
    (
        'checkpoint is text',
        lambda p, i, x: CAMInferencer(p['config'], p['text_ckpt']),
        CheckpointError,
        'not a readable PyTorch checkpoint',
    ),
    (
        'checkpoint is a folder',
        lambda p, i, x: CAMInferencer(p['config'], p['dir_ckpt']),
        CheckpointError,
        'is a directory',
    ),
    (
        'checkpoint of another architecture',
        lambda p, i, x: CAMInferencer(p['config'], p['other_ckpt']),
        CheckpointError,
        'strict=False',
    ),
    (
        'head resized by an override',
        lambda p, i, x: CAMInferencer(
            load_config(p['config'], {'model.head.num_classes': 3}), p['ckpt']
        ),
        CheckpointError,
        'head.fc.weight: file (10, 64), model (3, 64)',
    ),
    (
        'device name',
        lambda p, i, x: CAMInferencer(p['config'], device='gpu'),
        InputError,
        "device 'gpu' is not a name torch knows",
    ),
    pytest.param(
        'cuda without GPU',
        lambda p, i, x: CAMInferencer(p['config'], device='cuda'),
        InputError,
        'not usable',
        marks=pytest.mark.skipif(not _cuda_missing(), reason='has a GPU'),
    ),
    (
        'size limit not an int',
        lambda p, i, x: CAMInferencer(
            p['config'], limits=InputLimits(max_input_pixels=0)
        ),
        InputError,
        'max_input_pixels must be >= 1',
    ),
    # --- images
    (
        'array HxWx4',
        lambda p, i, x: i(np.zeros((50, 60, 4), np.uint8)),
        ImageLoadError,
        'drop the alpha channel',
    ),
    (
        'array CHW',
        lambda p, i, x: i(np.zeros((3, 50, 60), np.uint8)),
        ImageLoadError,
        'channels first (CHW)',
    ),
    (
        'array 0x0',
        lambda p, i, x: i(np.zeros((0, 0, 3), np.uint8)),
        ImageLoadError,
        'it is empty',
    ),
    (
        'array 1-D',
        lambda p, i, x: i(np.zeros(10, np.uint8)),
        ImageLoadError,
        'expected HxW or HxWx3',
    ),
    (
        'float array in [0, 1]',
        lambda p, i, x: i(IMG / 255.0),
        ImageLoadError,
        'explained as a black image',
    ),
    (
        'float array with NaN',
        lambda p, i, x: i(np.full((8, 8, 3), np.nan)),
        ImageLoadError,
        'NaN',
    ),
    (
        'int array out of 0-255',
        lambda p, i, x: i(IMG.astype(np.int32) * 4),
        ImageLoadError,
        'pixel values in 0-255',
    ),
    ('bool array', lambda p, i, x: i(IMG > 100), ImageLoadError, 'dtype bool'),
    ('images an int', lambda p, i, x: i(3), ImageLoadError, 'got int'),
    (
        'images empty list',
        lambda p, i, x: i([]),
        ImageLoadError,
        'No input images',
    ),
    (
        'image missing',
        lambda p, i, x: i('nope.png'),
        ImageLoadError,
        'does not exist',
    ),
    (
        'image given as a URL',
        lambda p, i, x: i('http://example.com/cat.jpg'),
        ImageLoadError,
        'is a URL',
    ),
    (
        'methods in one comma-separated string',
        lambda p, i, x: i(IMG, methods='gradcam, layercam'),
        MethodError,
        'a comma does not separate methods',
    ),
    (
        'unreadable image',
        lambda p, i, x: i(osp.join(p['mixed'], 'bad.jpg')),
        ImageLoadError,
        'bad.jpg',
    ),
    (
        'empty folder',
        lambda p, i, x: i(p['empty']),
        ImageLoadError,
        'No image files',
    ),
    (
        'only hidden files',
        lambda p, i, x: i(p['hidden_only']),
        ImageLoadError,
        'hidden files are skipped',
    ),
    (
        'glob without match',
        lambda p, i, x: i(osp.join(p['root'], '*.webp')),
        ImageLoadError,
        'matches no image file',
    ),
    (
        'symlink loop',
        lambda p, i, x: i(p['loop']),
        ImageLoadError,
        'broken symbolic link',
    ),
    (
        'folder named like an image',
        lambda p, i, x: i(osp.join(p['mixed'], 'folder.png')),
        ImageLoadError,
        'No image files',
    ),
    (
        'image above max_image_pixels',
        lambda p, i, x: i(p['huge']),
        ResourceLimitError,
        '20000x20000 = 400.0 megapixels',
    ),
    (
        'model input above max_input_pixels',
        lambda p, i, x: CAMInferencer(
            p['config_no_resize'],
            p['ckpt'],
            limits=InputLimits(max_input_pixels=100_000),
        )(p['big']),
        ResourceLimitError,
        'After the test pipeline',
    ),
    # --- methods and targets
    (
        'methods empty',
        lambda p, i, x: i(IMG, methods=[]),
        MethodError,
        'methods is empty',
    ),
    (
        'methods None',
        lambda p, i, x: i(IMG, methods=None),
        MethodError,
        'got NoneType',
    ),
    (
        'methods of ints',
        lambda p, i, x: i(IMG, methods=[3]),
        MethodError,
        'methods holds 3',
    ),
    (
        'method twice',
        lambda p, i, x: i(IMG, methods=['gradcam', 'GradCAM']),
        MethodError,
        'twice',
    ),
    (
        'method unknown',
        lambda p, i, x: i(IMG, methods=['gradcamm']),
        MethodError,
        "Unknown CAM method 'gradcamm'",
    ),
    (
        'targets [[]]',
        lambda p, i, x: i(IMG, targets=[[]]),
        TargetError,
        'holds no class',
    ),
    (
        'targets: a name the model does not have',
        lambda p, i, x: i(IMG, targets='goldfsh'),
        TargetError,
        'close matches: goldfish, Carassius auratus',
    ),
    (
        'targets: a name of two classes',
        lambda p, i, x: i(IMG, targets=['tench', 'crane']),
        TargetError,
        "'crane' names 2 classes of this model (134, 517)",
    ),
    (
        'targets float',
        lambda p, i, x: i(IMG, targets=3.7),
        TargetError,
        'never rounded',
    ),
    (
        'targets bool',
        lambda p, i, x: i(IMG, targets=True),
        TargetError,
        'dtype bool',
    ),
    (
        'targets ragged',
        lambda p, i, x: i([IMG, IMG], targets=[[1, 2], [3]]),
        TargetError,
        'ragged',
    ),
    (
        'targets per image, wrong count',
        lambda p, i, x: i([IMG, IMG, IMG], targets=[1, 2]),
        TargetError,
        '3 images',
    ),
    (
        'targets negative',
        lambda p, i, x: i(IMG, targets=-1),
        TargetError,
        'out of range',
    ),
    (
        'targets beyond int64',
        lambda p, i, x: i(IMG, targets=99999999999999999999),
        TargetError,
        '99999999999999999999 is out of range',
    ),
    (
        'targets beyond the head',
        lambda p, i, x: i(IMG, targets=10),
        TargetError,
        '[0, 9]',
    ),
    (
        'targets 3-D',
        lambda p, i, x: i(IMG, targets=np.zeros((1, 1, 1), int)),
        TargetError,
        'shape (1, 1, 1)',
    ),
    (
        'topk 0',
        lambda p, i, x: i(IMG, topk=0),
        InputError,
        'topk must be >= 1',
    ),
    (
        'topk float',
        lambda p, i, x: i(IMG, topk=2.5),
        InputError,
        'topk must be an integer',
    ),
    (
        'topk beyond classes',
        lambda p, i, x: i(IMG, topk=11),
        TargetError,
        '[1, 10]',
    ),
    (
        'batch_size 0',
        lambda p, i, x: i(IMG, batch_size=0),
        InputError,
        'batch_size must be >= 1',
    ),
    (
        'batch_size str',
        lambda p, i, x: i(IMG, batch_size='8'),
        InputError,
        'batch_size must be an integer',
    ),
    (
        'num_workers negative',
        lambda p, i, x: i(IMG, num_workers=-1),
        InputError,
        'num_workers must be >= 0',
    ),
    # --- the engine's inputs and layers
    (
        'engine list input',
        lambda p, i, x: CAMEngine(i.model).explain([x]),
        InputError,
        'got list',
    ),
    (
        'engine 3-D input',
        lambda p, i, x: CAMEngine(i.model).explain(x[0]),
        InputError,
        'got (3, 64, 64)',
    ),
    (
        'engine empty batch',
        lambda p, i, x: CAMEngine(i.model).explain(x[:0]),
        InputError,
        'non-empty',
    ),
    (
        'num_extra_tokens negative',
        lambda p, i, x: CAMEngine(i.model, num_extra_tokens=-1),
        InputError,
        '>= 0',
    ),
    (
        'layer that does not exist',
        lambda p, i, x: CAMEngine(i.model, ['backbone.layer9']).explain(x),
        LayerNotFoundError,
        'Close matches',
    ),
    (
        'layer returning a tuple',
        lambda p, i, x: CAMEngine(i.model, ['neck']).explain(x),
        LayoutError,
        'returns a tuple',
    ),
    (
        'pooled 1x1 layer',
        lambda p, i, x: CAMEngine(i.model, ['neck.gap']).explain(x),
        LayoutError,
        'shape (1, 64, 1, 1)',
    ),
    (
        'class scores as layer',
        lambda p, i, x: CAMEngine(i.model, ['head.fc']).explain(x),
        LayoutError,
        'neither a (B, C, H, W) map',
    ),
    (
        'layer that does not run',
        lambda p, i, x: CAMEngine(i.model, ['head.loss_module']).explain(x),
        LayoutError,
        'does not run on this input',
    ),
    (
        'tensor with NaN',
        lambda p, i, x: CAMEngine(i.model).explain(x * float('nan')),
        NumericalError,
        'the input batch itself',
    ),
]


def _ids(case):
    return case.values[0] if hasattr(case, 'values') else case[0]


@pytest.mark.parametrize(
    'name, call, error, fragment', CASES, ids=[_ids(c) for c in CASES]
)
def test_bad_input_raises_typed_error(p, inf, x, name, call, error, fragment):
    with pytest.raises(error) as info:
        call(p, inf, x)
    assert isinstance(info.value, MMCamError), type(info.value).__mro__
    assert fragment in str(info.value)
    # The library speaks API names, never the command line's flags.
    assert '--' not in str(info.value)


# ----------------------------------------------------------------------
# Documented handling: a correct result, checked against another one.


def test_string_methods_is_one_method_and_string_layer_one_layer(inf):
    one = inf(IMG, methods='gradcam')[0]
    listed = inf(IMG, methods=['gradcam'])[0]
    assert list(one['maps']) == ['GradCAM']
    np.testing.assert_array_equal(
        one['maps']['GradCAM'], listed['maps']['GradCAM']
    )
    engine = CAMEngine(inf.model, target_layers='backbone.layer4')
    assert engine.target_layers == ['backbone.layer4']


def test_grayscale_and_float_arrays_equal_their_uint8_bgr_form(inf):
    gray = IMG[..., 1]
    as_bgr = np.repeat(gray[..., None], 3, -1)
    np.testing.assert_allclose(
        inf(gray)[0]['maps']['GradCAM'],
        inf(as_bgr)[0]['maps']['GradCAM'],
        atol=1e-6,
    )
    # Floats are 0-255 values, as in MMPretrain. At the pipeline's own size
    # (short side 80: no resampling, which would round uint8 differently)
    # they give the uint8 image's maps.
    img = np.random.default_rng(1).integers(0, 255, (80, 96, 3), np.uint8)
    np.testing.assert_allclose(
        inf(img.astype(np.float32))[0]['maps']['GradCAM'],
        inf(img)[0]['maps']['GradCAM'],
        atol=1e-5,
    )


def test_existing_file_is_literal_glob_only_when_missing(p):
    literal = osp.join(p['mixed'], 'photo[1].png')
    assert list_images(literal) == [literal]  # not photo1.png
    pattern = osp.join(p['mixed'], 'photo[0-9].png')  # no such file
    assert list_images(pattern) == [osp.join(p['mixed'], 'photo1.png')]


def test_folder_listing_skips_hidden_and_non_images(p):
    names = [osp.basename(f) for f in list_images(p['mixed'])]
    assert names == ['bad.jpg', 'good.png', 'photo1.png', 'photo[1].png']
    gifs = list_images(p['gifs'])
    assert [osp.basename(f) for f in gifs] == ['x.gif', 'y.gif']
    # A GIF reads the same alone and from its folder.
    np.testing.assert_array_equal(
        load_image(gifs[0]), load_image(list_images(gifs[0])[0])
    )
    assert load_image(p['unicode_image']).shape == (50, 60, 3)


def test_huge_png_is_refused_from_its_header(p, monkeypatch):
    import mmcv

    class Decoded(BaseException):
        """Escapes the loader's own error handling."""

    def no_decode(*args, **kwargs):
        raise Decoded

    monkeypatch.setattr(mmcv, 'imfrombytes', no_decode)
    with pytest.raises(ResourceLimitError, match='max_image_pixels'):
        load_image(p['huge'])
    with pytest.raises(Decoded):  # with the limit raised, it would decode
        load_image(p['huge'], max_pixels=10**9)


@pytest.mark.parametrize('workers', [0, 2])
def test_bad_image_raises_or_is_skipped_in_order(inf, p, workers):
    folder = p['mixed']
    with pytest.raises(ImageLoadError, match='bad.jpg') as info:
        inf(folder, num_workers=workers)
    assert 'Traceback' not in str(info.value)  # not a worker's traceback
    results = inf(folder, num_workers=workers, skip_bad_images=True)
    paths = [r['img_path'] for r in results]
    assert paths == list_images(folder)
    assert isinstance(results[0]['error'], ImageLoadError)
    assert all('maps' in r for r in results[1:])
    alone = inf(paths[1])[0]['maps']['GradCAM']
    np.testing.assert_allclose(results[1]['maps']['GradCAM'], alone, atol=1e-6)


def test_batches_above_the_input_limit_are_chunked_exactly(p):
    full = CAMInferencer(p['config'], p['ckpt'])
    small = CAMInferencer(
        p['config'], p['ckpt'], limits=InputLimits(max_input_pixels=64 * 64)
    )
    a = full(p['images'], batch_size=3)
    b = small(p['images'], batch_size=3)  # explained one image at a time
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(
            ra['maps']['GradCAM'], rb['maps']['GradCAM'], atol=1e-5
        )


def test_targets_by_class_name_equal_targets_by_index(inf):
    # The fixture's classes are ImageNet's: 'tench, Tinca tinca' (0),
    # 'goldfish, Carassius auratus' (1).
    assert inf.classes[:2] == [
        'tench, Tinca tinca',
        'goldfish, Carassius auratus',
    ]
    by_index = inf(IMG, targets=[[1, 0]])[0]
    for names in (['Goldfish', 'tench, Tinca tinca'], ['goldfish', 0]):
        by_name = inf(IMG, targets=[names])[0]
        assert by_name['targets'].tolist() == [1, 0]
        np.testing.assert_array_equal(
            by_name['maps']['GradCAM'], by_index['maps']['GradCAM']
        )
    assert inf(IMG, targets='goldfish')[0]['targets'].tolist() == [1]


def test_partial_checkpoint_only_with_strict_false(p):
    with pytest.warns(PartialCheckpointWarning, match='matching part only'):
        model = CAMInferencer(p['config'], p['other_ckpt'], strict=False).model
    fresh = CAMInferencer(p['config']).model
    # Nothing of the ViT fits the ResNet: the weights stay as initialised.
    report = compare_keys(model, torch.load(p['other_ckpt'])['state_dict'])
    own = [k for k in model.state_dict() if 'num_batches_tracked' not in k]
    assert len(report.missing) == len(own)
    assert report.unexpected and not set(report.unexpected) & set(own)
    for key in ('backbone.conv1.weight', 'head.fc.weight'):
        assert model.state_dict()[key].shape == fresh.state_dict()[key].shape
    with pytest.raises(CheckpointError, match=r'0 of \d+ model weights'):
        load_checkpoint(model, p['other_ckpt'])  # strict by default


# ----------------------------------------------------------------------
# Maps: NaN/Inf located, blank maps flagged.


def _model(p):
    return CAMInferencer(p['config'], p['ckpt']).model


def test_nan_in_a_conv_weight_names_that_module(p, x):
    model = _model(p)
    with torch.no_grad():
        model.backbone.layer2[0].conv1.weight[0, 0, 0, 0] = float('nan')
    with pytest.raises(NumericalError) as info:
        CAMEngine(model).explain(x)
    assert "'backbone.layer2.0.conv1' (Conv2d)" in str(info.value)
    assert 'the weights' in str(info.value)


def test_nan_head_is_not_reported_as_zero_gradient(p, x):
    model = _model(p)
    with torch.no_grad():
        model.head.fc.weight.fill_(float('nan'))
    for methods in (['gradcam'], ['scorecam']):
        with pytest.raises(NumericalError, match="'head.fc'") as info:
            CAMEngine(model).explain(x, methods)
        assert 'zero' not in str(info.value)


def test_overflowing_activations_name_the_first_layer(p, x):
    model = _model(p)
    with torch.no_grad():  # finite weights whose output overflows float32
        model.backbone.layer3[0].conv2.weight.fill_(1e38)
    with pytest.raises(NumericalError) as info:
        CAMEngine(model).explain(x)
    assert "activations of layer 'backbone.layer3.0.conv2'" in str(info.value)


def test_blank_flags_match_the_pre_relu_map(p, x):
    """``blank`` is True exactly where the hand-computed Grad-CAM map is
    <= 0 everywhere before its ReLU: class 0's head weights are negative."""
    model = CAMInferencer(p['config'], p['blank_ckpt']).model
    methods = ['gradcam', 'layercam', 'eigencam', 'scorecam']
    res = CAMEngine(model).explain(x, methods, targets=[[0, 1]] * 2)
    assert set(res.blank) == {'GradCAM', 'LayerCAM', 'EigenCAM', 'ScoreCAM'}
    acts = {}
    handle = model.backbone.layer4.register_forward_hook(
        lambda m, a, o: acts.setdefault('a', o)
    )
    with torch.no_grad():
        model(x, mode='tensor')
    handle.remove()
    weight = model.head.fc.weight  # GAP + linear: grad = w / (h * w)
    for k, cls in enumerate((0, 1)):
        pre_relu = (weight[cls][None, :, None, None] * acts['a']).sum(1)
        expect = (pre_relu.flatten(1).amax(1) <= 0).numpy()
        np.testing.assert_array_equal(res.blank['GradCAM'][:, k], expect)
        assert res.blank['LayerCAM'][:, k].tolist() == expect.tolist()
    assert (
        res.blank['GradCAM'][:, 0].all()
        and not res.blank['GradCAM'][:, 1].any()
    )
    assert np.all(res.maps['GradCAM'][:, 0] == 0)  # written, all zero
    assert not res.blank['EigenCAM'].any()  # class-agnostic: not blank
    assert res.blank['ScoreCAM'].shape == (2, 2)
    per_image = CAMInferencer(p['config'], p['blank_ckpt'])(IMG, targets=0)
    assert per_image[0]['blank']['GradCAM'].tolist() == [True]
