# Tiny ViT with a class token for the shapes data: patch 8 on 64 px gives an
# 8x8 patch grid; 4 layers of width 64. Classifies from the cls token, so
# CAMs exercise the extra-token layout (num_extra_tokens=1).
_base_ = ['./_base_shapes.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128
        ),
        img_size=64,
        patch_size=8,
        with_cls_token=True,
        out_type='cls_token',
        drop_rate=0.0,
        drop_path_rate=0.0,
    ),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=3,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1,),
    ),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, eta_min=1e-5)
