"""Library API: the batched engine, the inferencer and image inputs."""

from .cam_engine import CAMEngine
from .data import (
    ImageLoadError,
    build_test_pipeline,
    list_images,
    load_image,
    unique_prefix,
)
from .inferencer import CAMInferencer, build_model, load_weights
from .views import ViewOptions

__all__ = [
    'CAMEngine',
    'CAMInferencer',
    'build_model',
    'load_weights',
    'ImageLoadError',
    'build_test_pipeline',
    'list_images',
    'load_image',
    'unique_prefix',
    'ViewOptions',
]
