"""Tiny random classifiers of every attention family, for the method tests."""

import logging

import torch

__all__ = ['TINY', 'NON_SQUARE_OK', 'tiny_classifier']

ARCH = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)
VIT_HEAD = dict(type='VisionTransformerClsHead', num_classes=3, in_channels=16)
LINEAR_HEAD = dict(type='LinearClsHead', num_classes=3, in_channels=16)
PATCH = dict(img_size=32, patch_size=8)

TINY = {
    'vit': dict(
        backbone=dict(type='VisionTransformer', arch=ARCH, **PATCH),
        head=VIT_HEAD,
    ),
    'deit_distilled': dict(
        backbone=dict(type='DistilledVisionTransformer', arch=ARCH, **PATCH),
        head=dict(type='DeiTClsHead', num_classes=3, in_channels=16),
    ),
    'deit3': dict(
        backbone=dict(type='DeiT3', arch=ARCH, **PATCH), head=VIT_HEAD
    ),
    # BEiT's classification default: relative position bias, mean patch
    # token to the head (out_type='avg_featmap').
    'beit': dict(
        backbone=dict(
            type='BEiTViT',
            arch=ARCH,
            use_abs_pos_emb=False,
            use_rel_pos_bias=True,
            layer_scale_init_value=0.1,
            **PATCH,
        ),
        head=LINEAR_HEAD,
    ),
    'eva02': dict(
        backbone=dict(type='ViTEVA02', arch=ARCH, **PATCH), head=VIT_HEAD
    ),
    't2t': dict(
        backbone=dict(
            type='T2T_ViT',
            img_size=32,
            embed_dims=16,
            num_layers=2,
            t2t_cfg=dict(token_dims=8),
            layer_cfgs=dict(num_heads=2, feedforward_channels=32),
        ),
        head=VIT_HEAD,
    ),
    # RevViT concatenates its two streams: 2 x 16 channels to the head.
    'revvit': dict(
        backbone=dict(type='RevVisionTransformer', arch=ARCH, **PATCH),
        head=dict(LINEAR_HEAD, in_channels=32),
    ),
    'swin': dict(
        backbone=dict(
            type='SwinTransformer',
            arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]),
            img_size=32,
            out_indices=(1,),
            window_size=4,
        ),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(LINEAR_HEAD, in_channels=32),
    ),
}
# BEiT's relative position table is fixed to the training grid.
NON_SQUARE_OK = [k for k in TINY if k not in ('beit', 'swin')]


def tiny_classifier(kind: str, head_std: float = 0.5) -> torch.nn.Module:
    """A 2-block classifier of family ``kind`` with random weights, eval.

    The head is drawn from N(0, ``head_std``): several configs initialise it
    to zero, which would give zero gradients everywhere.
    """
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    model = MODELS.build(dict(type='ImageClassifier', **TINY[kind]))
    model.init_weights()
    for p in model.head.parameters():
        torch.nn.init.normal_(p, std=head_std)
    return model.eval()
