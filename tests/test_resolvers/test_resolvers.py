"""Resolver scenarios: non-square inputs, extra tokens, NHWC, overrides,
wrong names, the generic fallback, a user's resolver and TimmClassifier."""

import pytest
import torch
from mmpretrain.models import TimmClassifier
from mmpretrain.registry import MODELS
from torch import nn

from mmcam_ext import TARGET_RESOLVERS, CAMEngine
from mmcam_ext.resolvers import (
    BaseResolver,
    ForwardTrace,
    GenericResolver,
    TimmResolver,
    find_resolver,
    generic,
    plausible_map,
    resolve_targets,
)
from mmcam_ext.structures import TargetSpec, TokenLayout
from tests.helpers.layers import check_layer_choice, layer_map_and_grad
from tests.helpers.models import build_classifier
from tests.helpers.zoo_cases import ZOO_CASES

NON_SQUARE = (320, 224)


def _case(family):
    return next(c for c in ZOO_CASES if c.family == family)


@pytest.mark.slow
@pytest.mark.parametrize(
    'family,stride', [('ViT', 16), ('DeiT', 16), ('Swin', 32)]
)
def test_non_square_input_uses_the_real_grid(family, stride):
    model = build_classifier(_case(family).model_config())
    x = torch.randn(2, 3, *NON_SQUARE)
    spec = check_layer_choice(model, x)
    act, _ = layer_map_and_grad(model, spec, x)
    # 20x14 patches (10x7 for Swin's last stage), never a sqrt guess.
    assert act.shape[-2:] == (NON_SQUARE[0] // stride, NON_SQUARE[1] // stride)


def test_cls_token_vit_explains_the_input_of_the_last_attention():
    model = build_classifier('deit-tiny_4xb256_in1k')
    x = torch.randn(2, 3, 64, 96)
    spec = resolve_targets(model, x)
    assert spec.layers == ['backbone.layers.11.ln1']
    # Why: the last block's output patch tokens never reach the class token.
    _, grad = layer_map_and_grad(
        model, TargetSpec(['backbone.layers.11'], spec.layout), x
    )
    assert not bool(grad.any())


def test_distilled_deit_drops_two_tokens():
    model = build_classifier('deit-tiny-distilled_3rdparty_in1k')
    x = torch.randn(2, 3, 96, 64)
    spec = check_layer_choice(model, x)
    assert spec.layout.num_extra_tokens == 2
    act, _ = layer_map_and_grad(model, spec, x)
    assert act.shape[-2:] == (6, 4)
    # Dropping only one token leaves 25 for a 6x4 grid: a clear error.
    with pytest.raises(ValueError, match='expected 2 here'):
        CAMEngine(model, num_extra_tokens=1).explain(x)


def test_num_extra_tokens_override_is_used():
    model = build_classifier('deit-tiny_4xb256_in1k')
    x = torch.randn(2, 3, 64, 64)
    assert resolve_targets(model, x).layout.num_extra_tokens == 1
    spec = resolve_targets(model, x, num_extra_tokens=0)
    assert spec.layout.num_extra_tokens == 0
    with pytest.raises(ValueError, match='expected 1 here'):
        CAMEngine(model, num_extra_tokens=0).explain(x)


def test_families_without_the_attribute_get_their_token_count():
    """XCiT has no num_extra_tokens; its class token joins after our layer."""
    case = _case('XCiT')
    model = build_classifier(case.model_config())
    assert not hasattr(model.backbone, 'num_extra_tokens')
    spec = check_layer_choice(model, torch.randn(2, 3, *case.size))
    assert spec.layout.num_extra_tokens == 0


@pytest.mark.slow
def test_channels_last_backbone():
    case = _case('ViT-SAM')
    model = build_classifier(case.model_config())
    x = torch.randn(2, 3, *case.size)
    spec = check_layer_choice(model, x)
    assert spec.layout.kind == 'nhwc'
    act, _ = layer_map_and_grad(model, spec, x)
    assert act.shape[1:] == (768, 8, 6)  # 128x96 input, 16-pixel patches
    # Its channel-reduction neck is NCHW again: a user layer there is too.
    spec = check_layer_choice(
        model, x, target_layers=['backbone.channel_reduction']
    )
    assert spec.layout.kind == 'nchw'


def test_wrong_layer_name_lists_close_matches():
    model = build_classifier('resnet18_8xb32_in1k')
    with pytest.raises(KeyError, match='backbone.layer4'):
        resolve_targets(
            model,
            torch.randn(1, 3, 64, 64),
            target_layers=['backbone.layer44'],
        )


@pytest.mark.slow
def test_user_layer_in_another_stage_gets_its_own_grid():
    model = build_classifier(_case('Swin').model_config())
    x = torch.randn(2, 3, 128, 96)
    spec = check_layer_choice(
        model, x, target_layers=['backbone.stages.2.blocks.1']
    )
    act, _ = layer_map_and_grad(model, spec, x)
    assert act.shape[-2:] == (8, 6)


def test_plausible_map_rejects_non_maps():
    assert plausible_map((1, 512, 3, 2), (96, 64))
    assert not plausible_map((1, 3, 2, 512), (96, 64))  # channels-last
    assert not plausible_map((1, 512, 1, 1), (96, 64))  # pooled
    assert not plausible_map((1, 3, 49, 49), (96, 64))  # attention matrix


def test_generic_fallback_skips_window_attention_and_logs(monkeypatch):
    """Swin through the fallback: tokens, not a window-attention matrix."""
    model = build_classifier(_case('Swin').model_config())
    trace = ForwardTrace(model, torch.randn(1, 3, 96, 64))
    logged = []
    monkeypatch.setattr(
        generic, 'print_log', lambda msg, **kwargs: logged.append(msg)
    )
    spec = GenericResolver().resolve(model, trace)
    assert spec.layers == ['backbone.norm3']
    assert any(
        "generic fallback chose ['backbone.norm3']" in m for m in logged
    )


def test_engine_rejects_a_layer_with_another_batch():
    model = build_classifier(_case('Swin').model_config())
    name = 'backbone.stages.0.blocks.0.attn.w_msa.attn_drop'
    engine = CAMEngine(model, target_layers=[name])
    engine._specs[(96, 64)] = TargetSpec([name], TokenLayout('nchw'))
    with pytest.raises(ValueError, match='batch'):
        engine.explain(torch.randn(2, 3, 96, 64))


class TinyNet(nn.Module):
    """Two convs; its resolver wants the *first*, the fallback the last."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.body = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x):
        return (self.body(torch.relu(self.stem(x))),)


@pytest.fixture
def tiny_classifier():
    MODELS.register_module(name='TinyNet', module=TinyNet, force=True)
    yield MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='TinyNet'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=16),
        )
    ).eval()
    MODELS._module_dict.pop('TinyNet', None)


def test_unknown_backbone_uses_generic_fallback(tiny_classifier):
    assert isinstance(find_resolver(tiny_classifier), GenericResolver)
    spec = check_layer_choice(tiny_classifier, torch.randn(2, 3, 48, 32))
    assert spec.layers == ['backbone.body']


def test_user_registered_resolver_is_picked_up(tiny_classifier):

    @TARGET_RESOLVERS.register_module()
    class TinyNetResolver(BaseResolver):
        backbones = ('TinyNet',)

        def resolve(self, model, trace):
            return TargetSpec(['backbone.stem'], TokenLayout('nchw'), 'test')

    try:
        assert isinstance(find_resolver(tiny_classifier), TinyNetResolver)
        x = torch.randn(2, 3, 48, 32)
        spec = check_layer_choice(tiny_classifier, x)
        assert spec.layers == ['backbone.stem']
        result = CAMEngine(tiny_classifier).explain(x)
        assert result.target_layers == ['backbone.stem']
    finally:
        TARGET_RESOLVERS._module_dict.pop('TinyNetResolver')


TIMM_CASES = [
    # name, constructor overrides, input, layer, layout kind, extra tokens
    ('resnet18', {}, (96, 64), 'model.layer4', 'nchw', 0),
    # feature_info ends at blocks.6; conv_head/bn2 keep its 3x2 map.
    ('tf_efficientnet_lite0', {}, (96, 64), 'model.bn2', 'nchw', 0),
    # norm_pre (an Identity here) follows stages.3 with the same map.
    ('convnext_atto', {}, (96, 64), 'model.norm_pre', 'nchw', 0),
    (
        'vit_tiny_patch16_224',
        {},
        (224, 224),
        'model.blocks.11.norm1',
        'tokens',
        1,
    ),
    (
        'vit_tiny_patch16_224',
        dict(img_size=64, reg_tokens=4, no_embed_class=True),
        (64, 64),
        'model.blocks.11.norm1',
        'tokens',
        5,
    ),
    (
        'vit_tiny_patch16_224',
        dict(img_size=64, global_pool='avg'),
        (64, 64),
        'model.norm',
        'tokens',
        1,
    ),
    (
        'deit_tiny_distilled_patch16_224',
        dict(img_size=64),
        (64, 64),
        'model.blocks.11.norm1',
        'tokens',
        2,
    ),
    # Channels-last stages: the final norm keeps the last stage's map.
    (
        'swin_tiny_patch4_window7_224',
        dict(img_size=128, window_size=4),
        (128, 128),
        'model.norm',
        'nhwc',
        0,
    ),
    ('volo_d1_224', dict(img_size=64), (64, 64), 'model.network.4', 'nhwc', 0),
]


@pytest.mark.parametrize(
    'name,kwargs,size,layer,kind,extra',
    TIMM_CASES,
    ids=[f'{c[0]}{"+" if c[1] else ""}' for c in TIMM_CASES],
)
def test_timm_classifier(name, kwargs, size, layer, kind, extra):
    """Zero-flag layers from timm's own metadata, no list of class names."""
    model = TimmClassifier(
        model_name=name, num_classes=10, pretrained=False, **kwargs
    ).eval()
    assert isinstance(find_resolver(model), TimmResolver)
    spec = check_layer_choice(model, torch.randn(2, 3, *size))
    assert spec.layers == [layer]
    assert spec.layout.kind == kind
    assert spec.layout.num_extra_tokens == extra


def test_a_user_resolver_for_a_timm_class_beats_the_metadata():
    @TARGET_RESOLVERS.register_module()
    class MyTimmViT(BaseResolver):
        backbones = ('timm.VisionTransformer',)

        def resolve(self, model, trace):
            return TargetSpec(['model.blocks.0'], TokenLayout('tokens', 1))

    try:
        model = TimmClassifier(
            model_name='vit_tiny_patch16_224', num_classes=3, img_size=32
        )
        assert isinstance(find_resolver(model), MyTimmViT)
    finally:
        TARGET_RESOLVERS._module_dict.pop('MyTimmViT')
