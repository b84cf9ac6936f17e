"""Evaluate a config under ``torchrun`` with gloo on CPU; rank 0 writes
metrics.

The same launcher users run (``tools/dist_launch.py``, see
``mmcam_ext.cli.dist_launch`` for why MMEngine's own ``pytorch`` launcher
does not work on a CPU-only machine). Usage::

    torchrun --nproc_per_node=2 dist_run.py CONFIG OUT_JSON {val,test}
"""

import sys

from mmcam_ext.cli.dist_launch import main

if __name__ == '__main__':
    config, out, phase = sys.argv[1:4]
    sys.exit(main([phase, config, '--metrics-out', out]))
