"""Peak and retained memory of one CAM call, in a fresh process each.

On CPU torch allocates through ``malloc``, which ``tracemalloc`` does not
see, so the process's resident set is measured instead: ``VmHWM`` (peak
RSS, reset through ``/proc/self/clear_refs``) and ``VmRSS`` after the call.
Each measurement runs in its own subprocess with
``MALLOC_MMAP_THRESHOLD_=65536``: glibc then serves every large tensor by
``mmap`` and returns it to the system on free, so RSS follows live tensors
instead of glibc's cached heap. On CUDA ``torch.cuda`` counters are used.

Run as ``python -m benchmarks.memory --case resnet50 --batch 16
--mode ours``; it prints one JSON line.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
from typing import Dict

__all__ = ['measure_memory', 'MEMORY_MODES', 'status_kib', 'reset_peak']

MEMORY_MODES = ('floor', 'ours', 'pgc')
_MIB = 1024 * 1024


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def measure_memory(
    case: str, batch: int, mode: str, device: str = 'cpu', timeout: float = 600
) -> Dict[str, float]:
    """Run the worker in a fresh process; MiB figures of one call.

    Returns:
        ``base`` (MiB in use before the call), ``peak`` (extra MiB at the
        peak of the call) and ``held`` (extra MiB still in use after it,
        results and the CAM object kept alive as a user's loop would).
    """
    if mode not in MEMORY_MODES:
        raise ValueError(f'mode must be one of {MEMORY_MODES}, got {mode!r}.')
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_='65536',
        OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'),
    )
    cmd = [
        sys.executable,
        '-m',
        'benchmarks.memory',
        '--case',
        case,
        '--batch',
        str(batch),
        '--mode',
        mode,
        '--device',
        device,
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f'memory worker failed ({" ".join(cmd)}):\n{out.stderr[-2000:]}'
        )
    return json.loads(lines[-1])


def _worker(case: str, batch: int, mode: str, device: str) -> Dict:
    import torch

    from .speed import SPEED_MODELS, SpeedBench

    dev = torch.device(device)
    warm = SpeedBench(SPEED_MODELS[case], 1, dev)
    bench = SpeedBench(SPEED_MODELS[case], batch, dev, model=warm.model)
    call = dict(floor=bench.floor, ours=bench.ours, pgc=bench.pgc)[mode]
    getattr(warm, mode)()  # imports, lazy init, target resolution
    warm.release()
    del warm
    gc.collect()
    if dev.type == 'cuda':
        return _cuda_delta(call, dev)
    base = status_kib('VmRSS')
    reset_peak()
    result = call()  # noqa: F841  (kept alive, as a user's loop does)
    peak = status_kib('VmHWM')
    gc.collect()
    after = status_kib('VmRSS')
    return dict(
        base=base / 1024, peak=(peak - base) / 1024, held=(after - base) / 1024
    )


def _cuda_delta(call, dev) -> Dict:
    import torch

    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    result = call()  # noqa: F841
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev)
    gc.collect()
    after = torch.cuda.memory_allocated(dev)
    return dict(
        base=base / _MIB, peak=(peak - base) / _MIB, held=(after - base) / _MIB
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--case', required=True)
    parser.add_argument('--batch', type=int, required=True)
    parser.add_argument('--mode', choices=MEMORY_MODES, required=True)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    print(json.dumps(_worker(args.case, args.batch, args.mode, args.device)))


if __name__ == '__main__':
    main()
