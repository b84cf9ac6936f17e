"""Speed, memory and CAM-quality benchmark of mmcam_ext.

Prints one table with every figure next to its target, and writes it as
Markdown (``benchmark.md``) and a plot (``benchmark.png``) to ``--out-dir``.
All rows are measured in this run; trainings of the tiny shapes classifiers
and the demo assets are cached under ``--work-dir``.

Examples:
    python tools/benchmark.py                 # full run (tens of minutes)
    python tools/benchmark.py --quick         # about three minutes
    python tools/benchmark.py --sections speed memory
"""

import argparse
import os
import os.path as osp
import sys
from pathlib import Path
from typing import List, Optional

# benchmarks/ lives next to tools/ in the repository (not in the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    EVERY_SAMPLE_MODELS,
    SECTIONS,
    SPEED_MODELS,
    full_settings,
    quick_settings,
    run_benchmark,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--quick',
        action='store_true',
        help='Small settings, about three minutes',
    )
    parser.add_argument(
        '--sections',
        nargs='+',
        choices=SECTIONS,
        default=list(SECTIONS),
        help='What to measure',
    )
    parser.add_argument(
        '--vit-b',
        action='store_true',
        help='Add ViT-B/16 to the floor-ratio and memory rows',
    )
    parser.add_argument(
        '--models',
        nargs='+',
        choices=sorted(SPEED_MODELS),
        help='Models of the speed and memory rows (default: '
        'ResNet-50 and DeiT-tiny)',
    )
    parser.add_argument(
        '--testset-models',
        nargs='+',
        choices=sorted(EVERY_SAMPLE_MODELS),
        help='Models of the testset section',
    )
    parser.add_argument(
        '--compare',
        action='store_true',
        help='testset: also time grad-attention on the general path',
    )
    parser.add_argument(
        '--device',
        default=None,
        help='cpu or cuda; default: cuda when present',
    )
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'benchmark'),
        help='Caches (trained models, demo assets)',
    )
    parser.add_argument(
        '--out-dir', default=None, help='Markdown + PNG; default: --work-dir'
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    make = quick_settings if args.quick else full_settings
    settings = make(
        work_dir=args.work_dir, device=device, sections=tuple(args.sections)
    )
    if args.models:
        settings.speed_models = settings.memory_models = tuple(args.models)
    if args.testset_models:
        settings.testset_models = tuple(args.testset_models)
    settings.testset_compare = args.compare
    if args.vit_b:
        settings.speed_models = (*settings.speed_models, 'vit-base')
        settings.memory_models = (*settings.memory_models, 'vit-base')
    report = run_benchmark(settings)
    cmd = 'python tools/benchmark.py ' + ' '.join(argv or sys.argv[1:])
    report.notes.append(f'Regenerate with `{cmd.strip()}`.')
    out_dir = args.out_dir or args.work_dir
    os.makedirs(out_dir, exist_ok=True)
    md = osp.join(out_dir, 'benchmark.md')
    with open(md, 'w') as f:
        f.write(report.markdown())
    report.plot(osp.join(out_dir, 'benchmark.png'))
    print(report.markdown())
    print(f'Written {md} and {osp.join(out_dir, "benchmark.png")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
