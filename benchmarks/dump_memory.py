"""Memory of the dump writer over many samples: flat, not growing.

The writer streams each sample's rows into the SQLite index and its maps
into the store; nothing per sample stays in memory. This script feeds
``--samples`` synthetic samples (random maps and descriptors, the size of a
hook dump of a small model) through :class:`mmcam_ext.fileio.CAMWriter`
with the options a hook user gets with ``output=dict(save_raw=True)``
(per-sample PNGs, thumbnails, raw maps, descriptors, the index) and prints
the resident set size (``VmRSS``) every ``--every`` samples, in a fresh
process. Flat means: the growth from the first checkpoint to the last is
small and does not scale with the samples written in between.

Run as ``python -m benchmarks.dump_memory --samples 20000``; it prints a
table and one JSON line (``tools/benchmark.py --sections dumps`` reports
the same figure as a row).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

__all__ = ['measure_dump_memory']

_MIB = 1024


def _rss_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / _MIB
    raise KeyError('VmRSS')


def _overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """A cheap overlay (the visualizer's colour map is not measured)."""
    return (image * np.clip(cam, 0, 1)[..., None]).astype(np.uint8)


def _worker(samples: int, every: int, side: int, folder: str) -> Dict:
    from mmcam_ext.fileio import CAMSample, CAMWriter, WriterOptions
    from mmcam_ext.utils.descriptors import DESCRIPTOR_DIM

    rng = np.random.default_rng(0)
    image = (rng.random((side, side, 3)) * 255).astype(np.uint8)
    cams = rng.random((8, 1, side, side)).astype(np.float32)
    desc = rng.standard_normal((8, 1, DESCRIPTOR_DIM)).astype(np.float32)
    writer = CAMWriter(folder, WriterOptions(save_raw=True), _overlay)
    points: List[Dict[str, float]] = []
    start = time.perf_counter()
    for i in range(samples):
        writer.add(
            CAMSample(
                index=i,
                stem=f'{i:06d}',
                image=image,
                maps={'GradCAM': cams[i % 8]},
                kinds=['pred'],
                targets=[i % 10],
                target_scores=[0.5],
                descriptors={'GradCAM': desc[i % 8]},
                info=dict(
                    img_path=f'{i}.png',
                    gt=i % 7,
                    pred=i % 10,
                    score=0.5,
                    misclassified=i % 7 != i % 10,
                    rank=0,
                ),
            )
        )
        if (i + 1) % every == 0:
            writer.flush()
            points.append(dict(samples=i + 1, rss_mib=round(_rss_mib(), 1)))
    errors = writer.close()
    seconds = time.perf_counter() - start
    rows = len(writer.read_rows())
    return dict(
        points=points,
        seconds=round(seconds, 1),
        rows=rows,
        errors=errors,
    )


def measure_dump_memory(
    samples: int = 20000,
    every: int = 2000,
    side: int = 64,
    timeout: float = 3600,
) -> Dict:
    """Run the writer in a fresh process; RSS every ``every`` samples.

    Returns:
        dict: ``points`` (samples, RSS MiB), ``growth_mib`` (last minus
        first checkpoint), ``mib_per_1k`` (slope of a least-squares line
        through the checkpoints), ``seconds``, ``rows`` and ``errors``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            '-m',
            'benchmarks.dump_memory',
            '--worker',
            '--samples',
            str(samples),
            '--every',
            str(every),
            '--side',
            str(side),
            '--folder',
            os.path.join(tmp, 'dump'),
        ]
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=repo,
            check=True,
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    xs = np.array([p['samples'] for p in res['points']], float)
    ys = np.array([p['rss_mib'] for p in res['points']], float)
    res['growth_mib'] = round(float(ys[-1] - ys[0]), 1)
    # the second half: fixed-size buffers (a thumbnail sheet being filled,
    # SQLite's page cache, the queue) are all allocated by then
    res['growth_second_half_mib'] = round(
        float(ys[-1] - ys[len(ys) // 2 - 1]), 1
    )
    slope = np.polyfit(xs / 1000, ys, 1)[0] if len(xs) > 1 else 0.0
    res['mib_per_1k'] = round(float(slope), 2)
    return res


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--samples', type=int, default=20000)
    p.add_argument('--every', type=int, default=2000)
    p.add_argument('--side', type=int, default=64)
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--folder', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        res = _worker(args.samples, args.every, args.side, args.folder)
        print(json.dumps(res))
        return 0
    res = measure_dump_memory(args.samples, args.every, args.side)
    print('samples   RSS (MiB)')
    for point in res['points']:
        print(f'{point["samples"]:>7}   {point["rss_mib"]:>9.1f}')
    half = res['points'][len(res['points']) // 2 - 1]['samples']
    print(
        f'growth {res["growth_mib"]} MiB from {res["points"][0]["samples"]} '
        f'to {res["points"][-1]["samples"]} samples '
        f'({res["mib_per_1k"]} MiB per 1,000 samples), '
        f'{res["growth_second_half_mib"]} MiB from {half}; {res["rows"]} '
        f'rows in {res["seconds"]} s; errors: {res["errors"] or "none"}'
    )
    print(json.dumps(res))
    return 0


if __name__ == '__main__':
    sys.exit(main())
