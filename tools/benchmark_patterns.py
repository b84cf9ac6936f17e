"""Print the error-patterns benchmark (see ``benchmarks.patterns``).

``python tools/benchmark_patterns.py [--quick] [--no-timing]``: trains (or
loads from ``work_dirs/patterns_bench``) the tiny planted model, groups its
false positives, mines a pool, fine-tunes, and prints (a)-(c) and the
timings of the two tools.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.patterns import (
    QUICK,
    PatternsBenchConfig,
    format_report,
    run_patterns_benchmark,
    timing_rounds,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true', help='the small run')
    p.add_argument('--no-timing', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='also write the figures here')
    p.add_argument('--cache', default='work_dirs/patterns_bench')
    args = p.parse_args()
    torch.set_num_threads(2)
    cfg = QUICK if args.quick else PatternsBenchConfig()
    cfg = PatternsBenchConfig(**{**cfg.__dict__, 'seed': args.seed})
    with tempfile.TemporaryDirectory() as tmp:
        result = run_patterns_benchmark(cfg, Path(tmp), Path(args.cache))
        timings = None if args.no_timing else timing_rounds(Path(tmp) / 't')
    print(format_report(result, timings))
    if args.json:
        Path(args.json).write_text(
            json.dumps(dict(result=result, timings=timings), indent=1)
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
