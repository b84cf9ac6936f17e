"""CAMEngine: equality with independent computations, targets, state."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcam_ext import CAMEngine
from mmcam_ext.methods import build_method, method_names
from mmcam_ext.structures import TokenLayout
from mmcam_ext.utils.model import (
    ClassifierLogits,
    classifier_logits,
    get_module,
)
from tests.helpers.grad_cam import (
    GRADIENT_FAMILY,
    lib_param,
    reference_param,
)
from tests.helpers.models import build_classifier

VIT = 'deit-tiny_4xb256_in1k'
VIT_LAYER = 'backbone.layers.11.ln1'


@pytest.fixture(scope='module')
def cnn():
    torch.manual_seed(0)
    return build_classifier('resnet18_8xb32_in1k')


@pytest.fixture(scope='module')
def vit():
    torch.manual_seed(0)
    return build_classifier(VIT)


def _vit_reshape(tensor, grid=(4, 5)):
    """Independent fold for the reference: drop 1 cls token, 4x5 grid."""
    t = tensor[:, 1:, :]
    return t.reshape(t.shape[0], grid[0], grid[1], t.shape[2]).permute(
        0, 3, 1, 2
    )


def _reference(model, layer, x, targets, method, reshape=None, **kw):
    """pytorch-grad-cam's map; both SVD signs for the Eigen methods."""
    if method.startswith('Eigen') or kw.get('eigen_smooth'):
        return _both_signs(model, layer, x, targets, method, reshape, **kw)
    return _reference_once(model, layer, x, targets, method, reshape, **kw)


def _both_signs(model, layer, x, targets, method, reshape, **kw):
    """The reference with LAPACK's sign and with the opposite sign."""
    import pytorch_grad_cam.base_cam as bc
    import pytorch_grad_cam.eigen_cam as ec
    import pytorch_grad_cam.eigen_grad_cam as egc

    plain = _reference_once(model, layer, x, targets, method, reshape, **kw)
    orig = ec.get_2d_projection
    try:
        for mod in (bc, ec, egc):
            mod.get_2d_projection = lambda a: -orig(a)
        flipped = _reference_once(
            model, layer, x, targets, method, reshape, **kw
        )
    finally:
        for mod in (bc, ec, egc):
            mod.get_2d_projection = orig
    return plain, flipped


def _assert_matches(ours, ref):
    """Equal to the reference (or to one of its two SVD sign choices)."""
    if isinstance(ref, tuple):
        per_image = [
            min(np.abs(o - r).max() for r in (ref[0][i], ref[1][i]))
            for i, o in enumerate(ours)
        ]
        assert max(per_image) < 1e-4
    else:
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def _reference_once(model, layer, x, targets, method, reshape=None, **kw):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = getattr(pgc, method)(
        ClassifierLogits(model),
        [get_module(model, layer)],
        reshape_transform=reshape,
    )
    try:
        return cam(x, [ClassifierOutputTarget(int(c)) for c in targets], **kw)
    finally:
        cam.activations_and_grads.release()


def test_the_library_lists_the_gradient_family_it_shares_one_pass_for():
    from mmcam_ext.methods import (
        GRADIENT_METHODS,
        LayerMapMethod,
        method_class,
    )

    assert list(GRADIENT_METHODS) == GRADIENT_FAMILY
    assert all(
        issubclass(method_class(m), LayerMapMethod) for m in GRADIENT_METHODS
    )


@pytest.mark.parametrize('method', map(reference_param, GRADIENT_FAMILY))
def test_cnn_matches_pytorch_grad_cam(cnn, method):
    x = torch.randn(3, 3, 96, 128)
    targets = [1, 2, 3]
    ours = (
        CAMEngine(cnn, ['backbone.layer4'])
        .explain(x, [method], targets=targets)
        .maps[method][:, 0]
    )
    ref = _reference(cnn, 'backbone.layer4', x, targets, method)
    assert ours.shape == (3, 96, 128)
    _assert_matches(ours, ref)


@pytest.mark.parametrize('method', map(reference_param, GRADIENT_FAMILY))
def test_vit_matches_pytorch_grad_cam_on_non_square_grid(vit, method):
    x = torch.randn(2, 3, 64, 80)  # 4x5 patches of 16
    targets = [5, 7]
    ours = (
        CAMEngine(vit, [VIT_LAYER])
        .explain(x, [method], targets=targets)
        .maps[method][:, 0]
    )
    ref = _reference(vit, VIT_LAYER, x, targets, method, _vit_reshape)
    _assert_matches(ours, ref)


def _hand_cam(model, layer, x, targets, fold, weights_fn):
    """Plain-torch Grad-CAM family with autograd on an unfrozen model."""
    store = {}
    handle = get_module(model, layer).register_forward_hook(
        lambda m, i, o: store.setdefault('a', o)
    )
    try:
        logits = classifier_logits(model, x)
        act = store['a']
        grad = torch.autograd.grad(
            logits[torch.arange(len(x)), torch.tensor(targets)].sum(), act
        )[0]
    finally:
        handle.remove()
    a, g = fold(act.detach()), fold(grad)
    cam = F.relu((weights_fn(a, g) * a).sum(1)).numpy()
    out = []
    for c in cam:
        c = _minmax(c)
        # Upsampling lowers the peak between cell centres; pytorch-grad-cam
        # re-normalises after resizing (its layer aggregation), and so do we.
        out.append(_minmax(cv2.resize(c, (x.shape[-1], x.shape[-2]))))
    return np.stack(out)


def _minmax(c):
    c = c - c.min()
    return c / (c.max() + 1e-7)


def _gradcam_weights(a, g):
    return g.mean(dim=(2, 3), keepdim=True)


def _gradcampp_weights(a, g):
    """alpha = g^2 / (2 g^2 + sum(A) g^3); w = sum(alpha * relu(g)).

    The denominator can come close to 0 where g < 0, so rounding matters:
    g^3 is formed as g^2 * g, as in the paper's reference code.
    """
    g2 = g * g
    alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * (g2 * g) + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)


@pytest.mark.parametrize(
    'method,weights',
    [('gradcam', _gradcam_weights), ('gradcam++', _gradcampp_weights)],
)
@pytest.mark.parametrize('arch', ['cnn', 'vit'])
def test_matches_hand_written(cnn, vit, arch, method, weights):
    model, layer = (
        (cnn, 'backbone.layer4') if arch == 'cnn' else (vit, VIT_LAYER)
    )
    x = torch.randn(2, 3, 64, 80)
    fold = (lambda t: t) if arch == 'cnn' else _vit_reshape
    hand = _hand_cam(model, layer, x, [3, 9], fold, weights)
    name = build_method(method).name
    ours = (
        CAMEngine(model, [layer])
        .explain(x, [method], targets=[3, 9])
        .maps[name][:, 0]
    )
    np.testing.assert_allclose(ours, hand, atol=1e-4)
    model.zero_grad(set_to_none=True)


def test_batch_equals_single_samples(cnn):
    """Each sample gets its own target (pytorch-grad-cam's zip pitfall)."""
    x = torch.randn(3, 3, 64, 64)
    eng = CAMEngine(cnn)
    batch = eng.explain(x, ['gradcam'], targets=[4, 5, 6]).maps['GradCAM']
    for i, c in enumerate([4, 5, 6]):
        single = eng.explain(x[i : i + 1], ['gradcam'], targets=[c]).maps[
            'GradCAM'
        ]
        np.testing.assert_allclose(batch[i], single[0], atol=1e-5)


def test_single_int_target_explains_every_sample(cnn):
    x = torch.randn(2, 3, 64, 64)
    eng = CAMEngine(cnn)
    res = eng.explain(x, ['gradcam'], targets=7)
    assert (res.targets == 7).all()
    second = eng.explain(x[1:], ['gradcam'], targets=7).maps['GradCAM'][0]
    np.testing.assert_allclose(res.maps['GradCAM'][1], second, atol=1e-5)


def test_topk_targets_and_prediction(cnn):
    x = torch.randn(2, 3, 64, 64)
    eng = CAMEngine(cnn)
    res = eng.explain(x, ['gradcam', 'layercam'], topk=3)
    with torch.no_grad():
        logits = classifier_logits(cnn, x)
    np.testing.assert_array_equal(res.targets, logits.topk(3).indices.numpy())
    np.testing.assert_array_equal(res.pred_labels, logits.argmax(1).numpy())
    np.testing.assert_allclose(
        res.pred_scores, logits.softmax(1).max(1).values.numpy(), rtol=1e-5
    )
    assert res.maps['GradCAM'].shape == (2, 3, 64, 64)
    top2 = eng.explain(x, ['gradcam'], targets=res.targets[:, 1])
    np.testing.assert_allclose(
        res.maps['GradCAM'][:, 1], top2.maps['GradCAM'][:, 0], atol=1e-5
    )
    assert not np.allclose(
        res.maps['GradCAM'][:, 0], res.maps['GradCAM'][:, 1]
    )


def test_model_state_restored_and_hooks_released(cnn):
    cnn.train()
    first = next(cnn.parameters())
    first.grad = torch.ones_like(first)
    frozen = cnn.head.fc.weight
    frozen.requires_grad_(False)
    bn = get_module(cnn, 'backbone.bn1')
    stats = bn.running_mean.clone()
    hooks_before = sum(len(m._forward_hooks) for m in cnn.modules())
    try:
        CAMEngine(cnn).explain(
            torch.randn(2, 3, 64, 64), ['gradcam', 'eigencam', 'scorecam']
        )
        assert cnn.training and bn.training
        assert torch.equal(first.grad, torch.ones_like(first))
        assert not frozen.requires_grad
        assert all(
            p.requires_grad for p in cnn.parameters() if p is not frozen
        )
        assert all(p.grad is None for p in cnn.parameters() if p is not first)
        assert torch.equal(bn.running_mean, stats)
        assert (
            sum(len(m._forward_hooks) for m in cnn.modules()) == hooks_before
        )
    finally:
        frozen.requires_grad_(True)
        first.grad = None
        cnn.eval()


def test_hooks_released_on_error(cnn):
    hooks_before = sum(len(m._forward_hooks) for m in cnn.modules())
    with pytest.raises(ValueError, match='out of range'):
        CAMEngine(cnn).explain(torch.randn(1, 3, 64, 64), targets=[5000])
    with pytest.raises(ValueError, match='one per sample'):
        CAMEngine(cnn).explain(torch.randn(2, 3, 64, 64), targets=[1, 2, 3])
    assert sum(len(m._forward_hooks) for m in cnn.modules()) == hooks_before
    assert all(p.requires_grad for p in cnn.parameters())


def test_layer_after_last_attention_is_refused(vit):
    """The last block's output of a cls-token ViT has zero gradient."""
    with pytest.raises(ValueError, match='zero'):
        CAMEngine(vit, ['backbone.layers.11']).explain(
            torch.randn(1, 3, 64, 64)
        )


def test_default_vit_layer_is_before_last_attention(vit):
    res = CAMEngine(vit).explain(torch.randn(1, 3, 64, 80))
    assert res.target_layers == [VIT_LAYER]
    assert np.ptp(res.raw_maps['GradCAM']) > 0


def test_method_names_and_aliases():
    assert build_method('gradcam++').name == 'GradCAMPlusPlus'
    assert build_method('Grad-CAM').name == 'GradCAM'
    assert build_method('Score-CAM').name == 'ScoreCAM'
    assert build_method('xgradcam').name == 'XGradCAM'
    names = method_names()
    for required in [
        'ScoreCAM',
        'AblationCAM',
        'FullGrad',
        'ShapleyCAM',
        'FinerCAM',
        'RandomCAM',
        'FEM',
        'KPCACAM',
    ]:
        assert required in names
    with pytest.raises(KeyError, match='Available'):
        build_method('nosuchcam')


@pytest.mark.parametrize(
    'method',
    [
        'ScoreCAM',
        *map(
            lib_param,
            [
                'AblationCAM',
                'FullGrad',
                'KPCACAM',
                'ShapleyCAM',
                'FinerCAM',
                'RandomCAM',
                'FEM',
                'SegEigenCAM',
            ],
        ),
    ],
)
def test_library_methods_on_cnn(method):
    torch.manual_seed(0)
    model = build_classifier('resnet18_8xb32_in1k')
    res = CAMEngine(model).explain(torch.randn(2, 3, 64, 64), [method])
    maps = res.maps[method]
    assert maps.shape == (2, 1, 64, 64)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert all(p.grad is None for p in model.parameters())


def test_ablation_cam_on_tokens_matches_reference(vit):
    """ViT-aware ablation: our token fold vs pytorch-grad-cam's own layer."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.ablation_layer import AblationLayerVit
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = torch.randn(1, 3, 64, 80)
    ours = (
        CAMEngine(vit, [VIT_LAYER])
        .explain(x, ['ablationcam'], targets=[3])
        .maps['AblationCAM'][:, 0]
    )
    cam = pgc.AblationCAM(
        ClassifierLogits(vit),
        [get_module(vit, VIT_LAYER)],
        reshape_transform=_vit_reshape,
        ablation_layer=AblationLayerVit(),
    )
    ref = cam(x, [ClassifierOutputTarget(3)])
    cam.activations_and_grads.release()
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_aug_smooth_matches_pytorch_grad_cam(cnn):
    x = torch.randn(2, 3, 64, 64)
    ours = (
        CAMEngine(cnn, ['backbone.layer4'])
        .explain(x, ['gradcam'], targets=[1, 2], aug_smooth=True)
        .maps['GradCAM'][:, 0]
    )
    ref = _reference(
        cnn, 'backbone.layer4', x, [1, 2], 'GradCAM', aug_smooth=True
    )
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_eigen_smooth_matches_pytorch_grad_cam(cnn):
    x = torch.randn(2, 3, 64, 64)
    ours = (
        CAMEngine(cnn, ['backbone.layer4'])
        .explain(x, ['gradcam'], targets=[1, 2], eigen_smooth=True)
        .maps['GradCAM'][:, 0]
    )
    ref = _reference(
        cnn, 'backbone.layer4', x, [1, 2], 'GradCAM', eigen_smooth=True
    )
    _assert_matches(ours, ref)


def test_token_layout_error_names_expected_count():
    layout = TokenLayout('tokens', num_extra_tokens=1)
    with pytest.raises(ValueError, match='expected 2 here'):
        layout.to_nchw(torch.zeros(1, 22, 8), (4, 5), (64, 80))


def test_eigen_projection_is_oriented_and_equals_full_svd():
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from mmcam_ext.methods import eigen_projection

    acts = torch.randn(3, 64, 5, 7) + 2 * torch.rand(1, 1, 5, 7)
    ours = eigen_projection(acts).numpy()
    ref = get_2d_projection(acts.numpy())
    for o, r in zip(ours, ref):
        assert min(np.abs(o - r).max(), np.abs(o + r).max()) < 1e-4
    summed = acts.sum(1).flatten(1)
    summed = summed - summed.mean(1, keepdim=True)
    corr = (torch.from_numpy(ours).flatten(1) * summed).sum(1)
    assert (corr >= 0).all()


@pytest.mark.parametrize(
    'layers',
    [
        ['backbone.layer3', 'backbone.layer4'],  # one feeds the other
        ['backbone.layer4.1.conv2', 'backbone.layer4'],  # nested
    ],
)
@pytest.mark.parametrize('method', ['GradCAM', 'GradCAMPlusPlus', 'LayerCAM'])
def test_several_target_layers_match_pytorch_grad_cam(cnn, layers, method):
    """Averaging over layers, with one layer upstream of the other."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = torch.randn(2, 3, 64, 64)
    ours = (
        CAMEngine(cnn, layers)
        .explain(x, [method], targets=[1, 2])
        .maps[method][:, 0]
    )
    cam = getattr(pgc, method)(
        ClassifierLogits(cnn), [get_module(cnn, n) for n in layers]
    )
    ref = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(2)])
    cam.activations_and_grads.release()
    cnn.zero_grad(set_to_none=True)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def _lib_reference(model, method, x, preds):
    """pytorch-grad-cam called directly, one target per sample."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapped = ClassifierLogits(model)
    layer = [get_module(model, 'backbone.layer4')]
    if method == 'FullGrad':
        cam = pgc.FullGrad(wrapped, [])
    else:
        cam = getattr(pgc, method.replace('KPCACAM', 'KPCA_CAM'))(
            wrapped, layer
        )
    targets = (
        None
        if method == 'FinerCAM'
        else [ClassifierOutputTarget(int(c)) for c in preds]
    )
    try:
        np.random.seed(0)
        return cam(x, targets)
    finally:
        getattr(cam, 'base_cam', cam).activations_and_grads.release()
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize(
    'method',
    map(
        lib_param,
        [
            'AblationCAM',
            'FullGrad',
            'KPCACAM',
            'ShapleyCAM',
            'FinerCAM',
            'RandomCAM',
            'FEM',
            'SegEigenCAM',
        ],
    ),
)
def test_library_methods_equal_pytorch_grad_cam(cnn, method):
    """Same maps as the library itself, for every sample of the batch.

    FinerCAM's reference picks its own targets (the prediction and its three
    closest classes), which is what we explain for the predicted class.
    """
    # FEM keeps activations above mean + 2 std of each map: impossible on
    # the 2x2 map of a 64 px input, so it gets a 4x4 map.
    size = 128 if method == 'FEM' else 64
    x = torch.randn(2, 3, size, size)
    np.random.seed(0)
    res = CAMEngine(cnn, ['backbone.layer4']).explain(x, [method])
    ref = _lib_reference(cnn, method, x, res.targets[:, 0])
    np.testing.assert_allclose(res.maps[method][:, 0], ref, atol=1e-4)
    # Not vacuous: the maps are not blank. (On random weights a single
    # sample's map may legitimately be all zero after the ReLU.)
    assert np.ptp(res.maps[method]) > 0


def test_ablation_cam_restores_layer_on_error(cnn):
    layer = get_module(cnn, 'backbone.layer4')
    calls = {'n': 0}

    def fail_late(module, args, output):
        calls['n'] += 1
        if calls['n'] > 3:
            raise RuntimeError('boom')

    handle = cnn.head.register_forward_hook(fail_late)
    try:
        with pytest.raises(RuntimeError, match='boom'):
            CAMEngine(cnn, ['backbone.layer4']).explain(
                torch.randn(1, 3, 64, 64), ['ablationcam']
            )
    finally:
        handle.remove()
    assert get_module(cnn, 'backbone.layer4') is layer
