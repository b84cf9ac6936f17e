"""Class-agnostic methods run once per sample, not once per target."""

import numpy as np
import pytest
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.methods import build_method
from tests.helpers.attention_models import tiny_classifier


class _Counting:
    """Wraps a method's entry point and counts its calls."""

    def __init__(self, method, attr):
        self.calls = 0
        inner = getattr(method, attr)

        def counted(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)

        setattr(method, attr, counted)


@pytest.mark.parametrize(
    'name, attr', [('rollout', 'explain'), ('eigencam', 'layer_map')]
)
def test_one_call_for_three_targets_same_maps(name, attr):
    torch.manual_seed(0)
    model = tiny_classifier('vit')
    x = torch.randn(2, 3, 32, 32)
    engine = CAMEngine(model, fast_path=False)
    method = build_method(name)
    assert method.class_agnostic
    spy = _Counting(method, attr)
    res = engine.explain(x, [method], targets=[[0, 1, 2], [2, 0, 1]])
    layers = len(res.target_layers) if attr == 'layer_map' else 1
    assert spy.calls == layers  # one call, not three
    single = engine.explain(x, [build_method(name)], targets=[[0], [2]])
    maps = res.maps[method.name]
    assert maps.shape[1] == 3
    for k in range(3):
        np.testing.assert_array_equal(
            maps[:, k], single.maps[method.name][:, 0]
        )


def test_class_specific_methods_still_run_per_target():
    torch.manual_seed(0)
    model = tiny_classifier('vit')
    method = build_method('gradcam')
    assert not method.class_agnostic
    spy = _Counting(method, 'layer_map')
    res = CAMEngine(model).explain(
        torch.randn(2, 3, 32, 32), [method], targets=[[0, 1, 2], [2, 0, 1]]
    )
    assert spy.calls == 3 * len(res.target_layers)
