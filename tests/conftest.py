"""Shared test fixtures: quiet logs, seeded RNG, models built from configs."""
import logging
import os

import pytest
import torch

os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture(autouse=True)
def _seed_and_quiet():
    torch.manual_seed(0)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield


def build_classifier(name_or_cfg, random_head: bool = True, **kwargs):
    """Build an MMPretrain classifier with random weights, in eval mode.

    Some configs zero-initialise the head (MAE fine-tuning recipes); a zero
    head gives zero gradients everywhere, which says nothing about a CAM, so
    the head is re-drawn from N(0, 0.02) unless ``random_head=False``.
    """
    from mmpretrain import get_model
    model = get_model(name_or_cfg, pretrained=False, **kwargs)
    if random_head and hasattr(model, 'head'):
        for p in model.head.parameters():
            torch.nn.init.normal_(p, std=0.02)
    return model.eval()
