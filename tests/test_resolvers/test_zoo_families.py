"""Zero-flag target layers for one zoo config per backbone family.

Each case builds the family's cheapest MMPretrain 1.2.0 zoo config with random
weights and checks what the resolver's layer choice controls (see
``helpers.check_layer_choice``): the layer runs, its gradient is non-zero,
its map follows the input's spatial layout and the pre-ReLU map varies.
"""

import pytest
import torch
from mmpretrain.registry import MODELS

from mmcam_ext.resolvers import find_resolver
from mmcam_ext.utils.backbone_facts import FAMILY_FACTS, find_facts
from tests.helpers.layers import check_layer_choice, variance_preserving_init
from tests.helpers.models import build_classifier
from tests.helpers.zoo_cases import ZOO_CASES


@pytest.mark.slow
@pytest.mark.parametrize('case', ZOO_CASES, ids=[c.family for c in ZOO_CASES])
def test_family_default_layer(case):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = build_classifier(case.model_config())
    if case.rescale_init:
        variance_preserving_init(model)
    x = torch.randn(2, case.in_channels, *case.size)
    assert not torch.equal(x[0], x[1])
    spec = check_layer_choice(model, x)
    assert spec.layers[0].startswith(('backbone.', 'neck.'))


@pytest.mark.parametrize('case', ZOO_CASES, ids=[c.family for c in ZOO_CASES])
def test_every_zoo_family_has_a_row(case):
    """No zoo family falls to the generic fallback (no build needed)."""
    backbone_type = case.model_config().model.backbone.type
    names = {c.__name__ for c in MODELS.get(backbone_type).__mro__}
    assert names & set(FAMILY_FACTS), backbone_type


def test_find_resolver_is_not_generic_for_a_zoo_model():
    model = build_classifier('resnet18_8xb32_in1k')
    assert type(find_resolver(model)).__name__ == 'FamilyResolver'
    facts = find_facts(model.backbone)
    assert facts is not None and facts.layer is None
