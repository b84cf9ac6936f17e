# The real-weights demo model (EfficientNet-Lite0, ImageNet-1k) with CAMs of
# every test image: `tools/test.py configs/demo_cam.py <ckpt>` leaves
# overlays, raw maps, an index and index.html under
# <work_dir>/cam/test_<timestamp>/.
# The demo model config already imports mmcam_ext.
_base_ = ['./demo/efficientnet_lite0_timm_in1k.py']

custom_hooks = [
    dict(
        type='CAMVisualizationHook',
        methods=['gradcam', 'gradcam++'],
        target='pred',
        samples=dict(mode='all', max_per_eval=64),
        output=dict(save_raw=True),
    ),
]
visualizer = dict(
    type='CAMVisualizer', vis_backends=[dict(type='LocalVisBackend')]
)
