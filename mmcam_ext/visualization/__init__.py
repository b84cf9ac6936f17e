"""Drawing CAMs: overlays, signed maps, multi-method grids, HTML gallery."""

from .cam_visualizer import CAMVisualizer, draw_cam_rows, to_rgb
from .gallery import render_gallery, write_gallery

__all__ = [
    'CAMVisualizer',
    'draw_cam_rows',
    'to_rgb',
    'render_gallery',
    'write_gallery',
]
