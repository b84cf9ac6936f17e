"""Localisation and class specificity of the attention methods vs Grad-CAM.

Trains (or reuses, cached) the tiny ViT and Swin of
``benchmarks/configs/shapes/`` on generated shapes with known boxes and
prints the README's localisation tables (logic: ``benchmarks/attention.py``).

Example:
    python tools/benchmark_attention.py --work-dir work_dirs/shapes
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

# benchmarks/ lives next to tools/ in the repository (not in the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.attention import CASES, markdown, run_case


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir',
        default='work_dirs/shapes',
        help='Data, training runs and cached checkpoints',
    )
    parser.add_argument(
        '--models',
        nargs='+',
        choices=[c.arch for c in CASES],
        default=[c.arch for c in CASES],
    )
    parser.add_argument('--pairs', type=int, default=60)
    parser.add_argument('--limit', type=int, help='Validation images')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rows, pairs, notes = [], [], []
    for case in CASES:
        if case.arch in args.models:
            r, p, acc = run_case(
                case, args.work_dir, limit=args.limit, pairs=args.pairs
            )
            rows += r
            pairs += p
            notes.append(
                f'- {case.label}: val accuracy {acc:.1%} ({case.epochs} '
                f'epochs, seed 0), {len(r) and r[0].chance_energy:.1%} '
                'mean box area.'
            )
    print(markdown(rows, pairs, notes))
    return 0


if __name__ == '__main__':
    sys.exit(main())
