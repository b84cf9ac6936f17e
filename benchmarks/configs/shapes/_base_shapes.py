# Shared data, schedule and runtime of the tiny shapes classifiers
# (benchmarks/datasets/shapes.py: a shape on clutter, with a known object box).
# `benchmarks.datasets.shapes_train.train_shapes_classifier` fills in
# data_root and work_dir; the values here are placeholders.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)

data_root = 'data/shapes'
# Read by train_shapes_classifier to generate the data (not by the Runner).
shapes_data = dict(
    train_per_class=40, val_per_class=15, scale=(0.3, 0.5), distractors=3
)

data_preprocessor = dict(
    num_classes=3, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    # Loaded in the main process; MMPretrain's tools/train.py and test.py
    # default to persistent workers, which need num_workers > 0.
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    # Loaded in the main process; MMPretrain's tools/train.py and test.py
    # default to persistent workers, which need num_workers > 0.
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=8)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1000, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'),
)
visualizer = dict(
    type='CAMVisualizer', vis_backends=[dict(type='LocalVisBackend')]
)
log_level = 'WARNING'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
