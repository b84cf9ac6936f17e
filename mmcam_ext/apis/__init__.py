"""Library API: the batched engine, the inferencer and image inputs."""
from .data import (ImageLoadError, build_test_pipeline, list_images,
                   load_image, unique_prefix)
from .engine import CAMEngine, normalize_maps
from .inferencer import CAMInferencer, build_model, load_weights

__all__ = [
    'CAMEngine', 'normalize_maps', 'CAMInferencer', 'build_model',
    'load_weights', 'ImageLoadError', 'build_test_pipeline', 'list_images',
    'load_image', 'unique_prefix'
]
