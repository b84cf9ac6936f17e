"""Visualise CAMs of an MMPretrain classifier (see ``mmcam_ext.cli.vis_cam``).

A drop-in for MMPretrain's ``tools/visualization/vis_cam.py``:
``python tools/vis_cam.py IMG CONFIG CHECKPOINT [--method ...]``.
"""

import sys

from mmcam_ext.cli.vis_cam import main

if __name__ == '__main__':
    sys.exit(main())
