"""Command lines of mmcam_ext: argument parsing and reporting only.

``tools/*.py`` in the repository (and ``mmcam_ext/.mim/tools`` in a wheel,
for ``mim run``) are two-line wrappers around the ``main`` functions here,
which are also the console entry points.
"""

from .demo import main as demo_main
from .vis_cam import main as vis_cam_main

__all__ = ['vis_cam_main', 'demo_main']
