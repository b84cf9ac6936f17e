# Distilled DeiT-tiny (cls + dist token) with Grad-CAMs of the first 16 validation/test samples at every
# evaluation: MMPretrain's recipe plus the plugin lines of _base_/cam_plugin.py.
_base_ = [
    'mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py',
    './_base_/cam_plugin.py',
]
