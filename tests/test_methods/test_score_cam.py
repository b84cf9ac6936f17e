"""Native batched ScoreCAM: equal to pytorch-grad-cam's, pruning works."""

import numpy as np
import pytest
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.methods import ScoreCAM, build_method
from mmcam_ext.utils.model import (
    ClassifierLogits,
    get_module,
)
from tests.helpers.models import build_classifier

LAYER = 'backbone.layer2.1.conv2'  # 128 channels: quick


@pytest.fixture(scope='module')
def cnn():
    torch.manual_seed(0)
    return build_classifier('resnet18_8xb32_in1k')


def _reference(model, x, targets):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = pgc.ScoreCAM(ClassifierLogits(model), [get_module(model, LAYER)])
    cam.batch_size = 64
    try:
        return cam(x, [ClassifierOutputTarget(int(c)) for c in targets])
    finally:
        cam.activations_and_grads.release()


def test_name_builds_native_score_cam():
    method = build_method('score-cam', mask_batch_size=7, top_k_channels=3)
    assert isinstance(method, ScoreCAM)
    assert (method.mask_batch_size, method.top_k_channels) == (7, 3)
    with pytest.raises(ValueError, match='mask_batch_size'):
        ScoreCAM(mask_batch_size=0)


@pytest.mark.parametrize('mask_batch_size', [5, 64])
def test_matches_pytorch_grad_cam(cnn, mask_batch_size):
    """Chunks that split and mix images give pytorch-grad-cam's maps."""
    x = torch.randn(2, 3, 48, 64)
    targets = [3, 500]
    ours = (
        CAMEngine(cnn, [LAYER])
        .explain(
            x, [ScoreCAM(mask_batch_size=mask_batch_size)], targets=targets
        )
        .maps['ScoreCAM'][:, 0]
    )
    ref = _reference(cnn, x, targets)
    assert np.ptp(ref) > 0.5
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_top_k_pruning_scores_fewer_channels(cnn, monkeypatch):
    """Only k masked forwards per image; full k equals no pruning."""
    import mmcam_ext.methods.score_cam as sc

    x = torch.randn(2, 3, 48, 64)
    calls = []
    real = sc.classifier_logits

    def counting(model, inputs):
        calls.append(len(inputs))
        return real(model, inputs)

    monkeypatch.setattr(sc, 'classifier_logits', counting)
    engine = CAMEngine(cnn, [LAYER])
    pruned = engine.explain(
        x, [ScoreCAM(16, top_k_channels=8)], targets=[1, 2]
    ).maps['ScoreCAM']
    assert sum(calls[1:]) == 2 * 8  # first call: the clean activations
    full = engine.explain(
        x, [ScoreCAM(64, top_k_channels=128)], targets=[1, 2]
    ).maps['ScoreCAM']
    plain = engine.explain(x, [ScoreCAM(64)], targets=[1, 2]).maps['ScoreCAM']
    np.testing.assert_allclose(full, plain, atol=1e-6)
    assert pruned.shape == plain.shape and np.isfinite(pruned).all()
