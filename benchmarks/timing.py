"""Timing helpers for a noisy, shared CPU.

Other jobs may share the machine, so absolute times drift. Every ratio the
benchmark reports is taken from candidates timed *interleaved* (A, B, A,
B, ...) in one process and summarised by the median, so a slow spell hits
both sides alike.
"""

import statistics
import time
from typing import Callable, Dict

import torch

__all__ = ['interleaved_medians', 'sync']

CPU = torch.device('cpu')


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timer measures it (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_medians(
    fns: Dict[str, Callable[[], object]],
    repeats: int = 3,
    warmup: int = 1,
    device: torch.device = CPU,
) -> Dict[str, float]:
    """Median wall time (s) of each callable, timed round-robin.

    Args:
        fns: Name -> zero-argument callable; results are dropped at once.
        repeats: Timed rounds (each callable once per round).
        warmup: Untimed rounds first (allocator, caches, lazy imports).
        device: Synchronised around each call on CUDA.
    """
    times: Dict[str, list] = {name: [] for name in fns}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if rnd >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
