"""MMPretrain train/val/test under ``torchrun``, also on CPU-only machines.

``torchrun --nproc_per_node=2 tools/dist_launch.py test CONFIG CKPT
--work-dir DIR`` (see ``mmcam_ext.cli.dist_launch``).
"""

import sys

from mmcam_ext.cli.dist_launch import main

if __name__ == '__main__':
    sys.exit(main())
