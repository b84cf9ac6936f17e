# Tiny Swin for the shapes data: patch 4 on 64 px gives a 16x16 grid, then
# 8x8 and 4x4 after two patch mergings; windows of 4 (16, 4 and 1 windows
# per stage), the second block of each stage shifted by 2. No class token:
# the head pools the last stage's tokens.
_base_ = ['./_base_shapes.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[2, 2, 2], num_heads=[2, 4, 8]),
        img_size=64,
        patch_size=4,
        window_size=4,
        out_indices=(2,),
        drop_rate=0.0,
        drop_path_rate=0.0,
        pad_small_map=True,
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=3,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1,),
    ),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, eta_min=1e-5)
