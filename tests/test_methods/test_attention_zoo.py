"""The three attention methods with zero flags on zoo configs and timm models.

Every MMPretrain 1.2.0 zoo family whose attention the methods follow is
built from its zoo config with random weights (``zoo_cases.py``), and timm
ViT (also with register tokens), DeiT, distilled DeiT, Swin and VOLO inside
``TimmClassifier``; the engine's default call with ``methods=[...]`` only
must give finite, non-constant ``[0, 1]`` maps for every sample, leave the
model's outputs unchanged and the model exactly as it was.
"""

import numpy as np
import pytest
import torch
from mmpretrain.models import TimmClassifier

from mmcam_ext import CAMEngine
from tests.helpers.layers import variance_preserving_init
from tests.helpers.models import build_classifier
from tests.helpers.zoo_cases import ZOO_CASES

METHODS = ['attention_rollout', 'grad_attention', 'attention_relevance']
ZOO_ATTENTION = [
    'Swin',
    'SwinV2',
    'Twins-PCPVT',
    'Twins-SVT',
    'DaViT',
    'MixMIM',
    'TinyViT',
    'ViT-SAM',
    'HiViT',
    'EfficientFormer',
    'XCiT',
    'LeViT',
    'ViT',
    'DeiT',
    'DeiT-distilled',
    'DeiT3',
    'BEiT',
    'EVA',
    'EVA02',
    'T2T-ViT',
    'RevViT',
]
TIMM_MODELS = {
    'vit': ('vit_tiny_patch16_224', dict(img_size=96)),
    'vit-registers': (
        'vit_small_patch16_224',
        dict(img_size=96, reg_tokens=4, no_embed_class=True),
    ),
    'deit': ('deit_tiny_patch16_224', dict(img_size=96)),
    'deit-distilled': ('deit_tiny_distilled_patch16_224', dict(img_size=96)),
    'swin': (
        'swin_tiny_patch4_window7_224',
        dict(img_size=128, window_size=4),
    ),
    'volo': ('volo_d1_224', dict(img_size=96)),
}


def _check(model, x):
    flags = [p.requires_grad for p in model.parameters()]
    with torch.no_grad():
        before = model(x, mode='tensor')
    # After the first forward: EVA-02 re-computes its RoPE buffers for a
    # new input size by itself.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = CAMEngine(model).explain(x, methods=METHODS)
    assert set(result.maps) == {
        'AttentionRollout',
        'GradAttention',
        'AttentionRelevance',
    }
    for name, maps in result.maps.items():
        assert maps.shape == (len(x), 1, *x.shape[-2:]), name
        flat = maps.reshape(len(x), -1)
        assert np.isfinite(flat).all() and flat.min() >= 0, name
        assert flat.max() <= 1 + 1e-6, name
        assert (flat.max(1) - flat.min(1) > 0.5).all(), f'{name} is flat'
    with torch.no_grad():
        after = model(x, mode='tensor')
    assert torch.equal(before, after)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
@pytest.mark.parametrize('family', ZOO_ATTENTION)
def test_zoo_family_attention_methods(family):
    torch.manual_seed(0)
    case = next(c for c in ZOO_CASES if c.family == family)
    model = build_classifier(case.model_config())
    if case.rescale_init:
        variance_preserving_init(model)
    _check(model, torch.randn(2, case.in_channels, *case.size))


@pytest.mark.slow
@pytest.mark.parametrize('kind', sorted(TIMM_MODELS))
def test_timm_classifier_attention_methods(kind):
    torch.manual_seed(0)
    name, kwargs = TIMM_MODELS[kind]
    model = TimmClassifier(
        model_name=name, num_classes=10, pretrained=False, **kwargs
    ).eval()
    size = kwargs['img_size']
    _check(model, torch.randn(2, 3, size, size))
