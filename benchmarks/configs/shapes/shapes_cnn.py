# Tiny ResNet-18 (CIFAR stem: no early downsampling, width 8) for the
# shapes data: its last stage keeps an 8x8 map on 64 px, fine enough for a
# CAM to be scored against the object box.
_base_ = ['./_base_shapes.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        stem_channels=8,
        base_channels=8,
        num_stages=4,
        out_indices=(3,),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=3,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1,),
    ),
)

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=3e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, eta_min=1e-5)
