"""Methods built from config dicts: registry, aliases, options, errors; the
engine and the hook take names, dicts and instances alike."""

import numpy as np
import pytest
import torch

from mmcam_ext import CAM_METHODS, CAMEngine
from mmcam_ext.cli.method_options import parse_method_options
from mmcam_ext.engine.hooks import CAMVisualizationHook
from mmcam_ext.errors import MethodError
from mmcam_ext.methods import (
    AttentionRollout,
    GradAttention,
    ScoreCAM,
    build_method,
)
from mmcam_ext.methods.builder import method_configs, method_options
from tests.helpers.attention_models import tiny_classifier


def test_registry_builds_from_a_dict_with_options():
    method = CAM_METHODS.build(dict(type='GradAttention', eps=1e-4))
    assert isinstance(method, GradAttention) and method.eps == 1e-4


@pytest.mark.parametrize(
    'cfg',
    [
        'Attention-Rollout',
        'rollout',
        dict(type='attn_rollout'),
        dict(type=AttentionRollout),
    ],
)
def test_names_and_aliases_are_case_insensitive(cfg):
    assert isinstance(build_method(cfg), AttentionRollout)


def test_options_from_a_dict_and_from_keywords_agree():
    a = build_method(dict(type='rollout', head_fusion='max'))
    b = build_method('rollout', head_fusion='max', discard_ratio=0.5)
    assert a.head_fusion == b.head_fusion == 'max'
    assert (a.discard_ratio, b.discard_ratio) == (0.0, 0.5)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(MethodError, match='head_fusion, discard_ratio'):
        CAM_METHODS.build(dict(type='rollout', head_fuson='max'))
    with pytest.raises(MethodError, match='takes no options'):
        build_method('relevance', eps=1.0)


def test_bad_values_are_rejected_by_the_constructor():
    with pytest.raises(ValueError, match='head_fusion'):
        build_method(dict(type='rollout', head_fusion='median'))
    with pytest.raises(ValueError, match='eps'):
        build_method(dict(type='grad_attention', eps=0))


def test_unknown_method_and_missing_type():
    with pytest.raises(MethodError, match='Available:.*GradCAM'):
        build_method('gradcamm')
    with pytest.raises(MethodError, match='needs a type'):
        build_method(dict(eps=1.0))


def test_instances_pass_through_but_take_no_options():
    method = ScoreCAM(top_k_channels=4)
    assert build_method(method) is method
    with pytest.raises(MethodError, match='built method'):
        build_method(method, mask_batch_size=8)


def test_every_method_documents_its_options():
    for name in CAM_METHODS.module_dict:
        cls = CAM_METHODS.get(name)
        for option in method_options(cls) or []:
            doc = cls.__doc__ or ''
            assert f'{option} (' in doc, f'{name}.{option} is undocumented'


def test_parse_method_options():
    parsed = parse_method_options(
        [
            'rollout.head_fusion=max',
            'Attention-Rollout.discard_ratio=0.9',
            'scorecam.top_k_channels=none',
            'scorecam.mask_batch_size=16',
        ]
    )
    assert parsed == {
        'AttentionRollout': dict(head_fusion='max', discard_ratio=0.9),
        'ScoreCAM': dict(top_k_channels=None, mask_batch_size=16),
    }
    with pytest.raises(MethodError, match='method.option=value'):
        parse_method_options(['discard_ratio=0.9'])
    with pytest.raises(MethodError, match='its options are'):
        parse_method_options(['rollout.ratio=0.9'])


def test_method_configs_merge_options_into_their_methods():
    configs = method_configs(
        ['rollout', dict(type='GradAttention', eps=1e-2), 'gradcam'],
        {'rollout': dict(head_fusion='min')},
    )
    assert configs == [
        dict(type='rollout', head_fusion='min'),
        dict(type='GradAttention', eps=1e-2),
        dict(type='gradcam'),
    ]
    with pytest.raises(MethodError, match='not among'):
        method_configs(['gradcam'], {'rollout': dict(head_fusion='min')})


def test_engine_takes_dicts_and_uses_their_options():
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    engine = CAMEngine(model)
    by_dict = engine.explain(
        x, [dict(type='rollout', head_fusion='max', discard_ratio=0.5)]
    ).maps['AttentionRollout']
    by_instance = engine.explain(
        x, [AttentionRollout(head_fusion='max', discard_ratio=0.5)]
    ).maps['AttentionRollout']
    default = engine.explain(x, ['rollout']).maps['AttentionRollout']
    np.testing.assert_array_equal(by_dict, by_instance)
    assert np.abs(by_dict - default).max() > 1e-3


def test_hook_accepts_method_dicts_and_checks_them_at_construction():
    hook = CAMVisualizationHook(
        methods=[dict(type='rollout', head_fusion='max'), 'gradcam']
    )
    assert len(hook.methods) == 2
    single = CAMVisualizationHook(methods=dict(type='grad_attention'))
    assert single.methods == [dict(type='grad_attention')]
    with pytest.raises(MethodError, match='head_fusion'):
        CAMVisualizationHook(methods=[dict(type='rollout', fusion='max')])
