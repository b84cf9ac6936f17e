"""Data the tests and benchmarks generate themselves."""

from .shapes import (
    SHAPE_CLASSES,
    ShapesConfig,
    draw_sample,
    load_boxes,
    make_shapes_split,
)

__all__ = [
    'SHAPE_CLASSES',
    'ShapesConfig',
    'draw_sample',
    'load_boxes',
    'make_shapes_split',
]
