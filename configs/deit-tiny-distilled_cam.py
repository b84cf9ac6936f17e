# distilled DeiT-tiny (cls + dist token) with CAMs of the first validation/test samples at every evaluation.
# Only the plugin lines are added to MMPretrain's recipe; the target layer is
# chosen by mmcam_ext's resolver (logged at the first evaluation).
_base_ = 'mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py'

custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)
custom_hooks = [
    dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        samples=dict(mode='first', num=16)),
]
