# The plugin lines every *_cam.py config adds to an MMPretrain recipe:
# import mmcam_ext (registers the hook, the visualizer, resolvers and methods,
# and allow-lists Runner checkpoint types for torch.load) and dump Grad-CAMs
# of the first 16 validation/test samples at every evaluation. The target
# layer is chosen by mmcam_ext's resolver (logged at the first evaluation).
custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)
custom_hooks = [
    dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        samples=dict(mode='first', num=16),
    ),
]
