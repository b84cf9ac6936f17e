"""Tiny random classifiers of every attention family, for the method tests.

``TINY`` holds MMPretrain ``ImageClassifier`` configs (2 blocks, width 16),
``TIMM`` timm models inside ``TimmClassifier`` (built with
``pretrained=False`` and a small ``img_size``).
"""

import logging
from typing import Dict

import torch

__all__ = [
    'TINY',
    'TIMM',
    'NON_SQUARE_OK',
    'WINDOWED',
    'TIMM_SIZE',
    'tiny_classifier',
    'timm_classifier',
]

ARCH = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)
VIT_HEAD = dict(type='VisionTransformerClsHead', num_classes=3, in_channels=16)
LINEAR_HEAD = dict(type='LinearClsHead', num_classes=3, in_channels=16)
GAP = dict(type='GlobalAveragePooling')
PATCH = dict(img_size=32, patch_size=8)


def _swin(depths, heads, window, **kwargs):
    return dict(
        backbone=dict(
            type='SwinTransformer',
            arch=dict(embed_dims=16, depths=depths, num_heads=heads),
            img_size=32,
            out_indices=(len(depths) - 1,),
            window_size=window,
            **kwargs,
        ),
        neck=GAP,
        head=dict(LINEAR_HEAD, in_channels=16 * 2 ** (len(depths) - 1)),
    )


def _twins(kind, **arch):
    base = dict(
        embed_dims=[16, 32],
        depths=[2, 2],
        num_heads=[1, 2],
        patch_sizes=[4, 2],
        strides=[4, 2],
        mlp_ratios=[2, 2],
        sr_ratios=[2, 1],
    )
    return dict(
        backbone=dict(
            type=kind, arch={**base, **arch}, out_indices=(1,), qkv_bias=True
        ),
        neck=GAP,
        head=dict(LINEAR_HEAD, in_channels=32),
    )


TINY: Dict[str, dict] = {
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
    # Two stages (patch merging), a shifted second block in each; small
    # maps padded so non-square inputs run.
    'swin': _swin([2, 2], [1, 2], 4, pad_small_map=True),
    # One stage whose single window covers the 8x8 grid (shift off).
    'swin_one_window': _swin([2], [2], 8),
    'swinv2': dict(
        _swin([2, 2], [1, 2], 4, pad_small_map=True),
        backbone=dict(
            type='SwinTransformerV2',
            arch=dict(
                embed_dims=16,
                depths=[2, 2],
                num_heads=[1, 2],
                extra_norm_every_n_blocks=0,
            ),
            img_size=32,
            out_indices=(1,),
            window_size=[4, 4],
            pad_small_map=True,
        ),
    ),
    'twins_pcpvt': _twins('PCPVT'),
    'twins_svt': _twins('SVT', window_sizes=[4, 4]),
}
# BEiT's relative position table is fixed to the training grid.
NON_SQUARE_OK = [k for k in TINY if k not in ('beit', 'swin_one_window')]
WINDOWED = ['swin', 'swinv2', 'twins_pcpvt', 'twins_svt']

# timm models (TimmClassifier): name and constructor overrides.
TIMM: Dict[str, dict] = {
    'timm_vit': dict(
        model_name='vit_tiny_patch16_224',
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=2,
        num_heads=2,
    ),
    'timm_vit_reg': dict(
        model_name='vit_tiny_patch16_224',
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=2,
        num_heads=2,
        reg_tokens=4,
        no_embed_class=True,
    ),
    'timm_deit_distilled': dict(
        model_name='deit_tiny_distilled_patch16_224',
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=2,
        num_heads=2,
    ),
    'timm_swin': dict(
        model_name='swin_tiny_patch4_window7_224',
        img_size=32,
        window_size=4,
        embed_dim=16,
        depths=(2, 2),
        num_heads=(1, 2),
    ),
    # The real VOLO-D1 layout (timm fixes its layers): outlookers on an
    # 8x8 grid, transformers on 4x4, two class-attention blocks.
    'timm_volo': dict(model_name='volo_d1_224', img_size=64),
}
TIMM_SIZE = {'timm_volo': (64, 64)}


def _quiet():
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.ERROR)


def _random_head(head: torch.nn.Module, std: float) -> None:
    for p in head.parameters():
        torch.nn.init.normal_(p, std=std)


def tiny_classifier(kind: str, head_std: float = 0.5) -> torch.nn.Module:
    """A 2-block classifier of family ``kind`` with random weights, eval.

    The head is drawn from N(0, ``head_std``): several configs initialise it
    to zero, which would give zero gradients everywhere.

    Args:
        kind (str): A key of :data:`TINY`.
        head_std (float): Std of the re-drawn head. Defaults to 0.5.

    Returns:
        torch.nn.Module: The classifier in eval mode.
    """
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    _quiet()
    model = MODELS.build(dict(type='ImageClassifier', **TINY[kind]))
    model.init_weights()
    _random_head(model.head, head_std)
    return model.eval()


def timm_classifier(kind: str, head_std: float = 0.5) -> torch.nn.Module:
    """A tiny timm model of ``kind`` in MMPretrain's ``TimmClassifier``.

    Args:
        kind (str): A key of :data:`TIMM`.
        head_std (float): Std of the re-drawn head weights (timm's VOLO and
            Swin heads start at zero-mean tiny values). Defaults to 0.5.

    Returns:
        torch.nn.Module: The classifier in eval mode.
    """
    from mmpretrain.models import TimmClassifier

    _quiet()
    cfg = dict(TIMM[kind])
    model = TimmClassifier(
        model_name=cfg.pop('model_name'),
        num_classes=3,
        pretrained=False,
        **cfg,
    )
    for name in ('head', 'head_dist', 'aux_head'):
        part = getattr(model.model, name, None)
        if isinstance(part, torch.nn.Module):
            _random_head(part, head_std)
    return model.eval()
