"""Pointing game of CAM methods on real photos, and the multi-scale cost.

Prints (and writes as Markdown) how often each method's map peaks on each
boxed object of ``benchmarks/data/real_photo_boxes.json`` for the config's
crop, the whole image, and the whole image at scales 1 and 2, with the
real-weights demo model, and why each miss of the last setting is missed;
then times ``--scales 1 2`` against the two single-scale runs and measures
the peak memory of a large scale, untiled and tiled.

Example:
    python tools/benchmark_photos.py --out work_dirs/photos.md
"""

import argparse
import os.path as osp
import sys
from pathlib import Path
from typing import List, Optional

# benchmarks/ lives next to tools/ in the repository (not in the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real_photos import (
    METHODS,
    load_objects,
    markdown_table,
    miss_reasons,
    pointing_table,
    scale_cost,
    tile_memory,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'demo'),
        help='Demo assets (converted once)',
    )
    parser.add_argument('--methods', nargs='+', default=list(METHODS))
    parser.add_argument(
        '--rounds',
        type=int,
        default=5,
        help='Timed rounds of the cost measurement (0: skip it)',
    )
    parser.add_argument(
        '--tile-scale',
        type=float,
        default=4.0,
        help='Large scale of the tile memory measurement (0: skip it)',
    )
    parser.add_argument(
        '--tile-size',
        type=int,
        default=448,
        help='Tile edge of the tile memory measurement',
    )
    parser.add_argument(
        '--target-layers',
        nargs='+',
        help="Layers to explain (default: the resolver's choice)",
    )
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='Also write the Markdown here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmcam_ext.demo import prepare_demo

    assets = prepare_demo(args.work_dir)
    objects = load_objects()
    table = pointing_table(
        assets.config,
        assets.checkpoint,
        objects,
        args.methods,
        args.device,
        args.target_layers,
    )
    reasons = miss_reasons(
        assets.config,
        assets.checkpoint,
        objects,
        args.methods,
        device=args.device,
        target_layers=args.target_layers,
    )
    cost = (
        scale_cost(
            assets.config,
            assets.checkpoint,
            objects,
            args.rounds,
            args.device,
        )
        if args.rounds
        else {}
    )
    memory = (
        tile_memory(
            assets.config,
            assets.checkpoint,
            next(o for o in objects if o.photo == 'grace_hopper'),
            args.tile_scale,
            args.tile_size,
            args.device,
        )
        if args.tile_scale
        else None
    )
    text = markdown_table(objects, table, cost, reasons, memory)
    print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
