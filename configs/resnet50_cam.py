# ResNet-50 with Grad-CAMs of the first 16 validation/test samples at every
# evaluation: MMPretrain's recipe plus the plugin lines of _base_/cam_plugin.py.
_base_ = [
    'mmpretrain::resnet/resnet50_8xb32_in1k.py',
    './_base_/cam_plugin.py',
]
