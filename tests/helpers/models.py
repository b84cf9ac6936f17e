"""Models and configs the tests build: random MMPretrain classifiers."""

import os.path as osp

import torch

__all__ = ['build_classifier', 'SMALL_PIPELINE', 'mmpretrain_config']


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


SMALL_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=80, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]


def mmpretrain_config(rel: str) -> str:
    import mmpretrain

    return osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs', rel)
