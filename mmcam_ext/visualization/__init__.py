"""Drawing CAMs: overlays, signed maps, multi-method grids, the HTML
gallery and the false-positive report."""

from .cam_visualizer import CAMVisualizer, draw_cam_rows, to_rgb
from .dump_tables import FinishedDump, finish_dump, write_tables
from .gallery import gallery_data, render_gallery, write_gallery
from .report import false_positive_pairs, write_report

__all__ = [
    'CAMVisualizer',
    'draw_cam_rows',
    'to_rgb',
    'gallery_data',
    'render_gallery',
    'write_gallery',
    'false_positive_pairs',
    'write_report',
    'write_tables',
    'finish_dump',
    'FinishedDump',
]
