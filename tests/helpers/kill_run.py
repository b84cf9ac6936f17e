"""Runs that a test kills with SIGKILL while they write a dump.

As a script, ``python kill_run.py CONFIG`` runs ``Runner.test()`` on a
config (the hook writes its dump); with ``torchrun`` it runs under 2 gloo
processes, each writing its pid to ``<work_dir>/pid.rank<r>``. A
``SlowIterHook`` in the config slows each test iteration down so that the
parent can land its kill mid-run; it sleeps, nothing else (the CAM work is
the hook's own).

:func:`wait_for_rows` polls a dump's streaming index (a reader beside the
writer, as a user's query would be) until enough rows are committed.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

from mmengine.hooks import Hook

from mmcam_ext.fileio import read_shard, shard_paths
from mmcam_ext.registry import HOOKS

#: The gloo launcher of the DDP tests (``torch.distributed.init``).
DIST = os.environ.get('KILL_RUN_DIST') == '1'


@HOOKS.register_module(force=True)
class SlowIterHook(Hook):
    """Sleep ``seconds`` after each test iteration (to kill mid-run)."""

    priority = 'LOWEST'

    def __init__(self, seconds: float = 0.1) -> None:
        self.seconds = seconds

    def after_test_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        time.sleep(self.seconds)


def committed_rows(folder: Path, name: Optional[str] = None) -> int:
    """Rows committed so far in a dump folder's shards (or one shard)."""
    total = 0
    for path in shard_paths(folder):
        if name is None or path.name == name:
            try:
                total += len(read_shard(path)[1])
            except Exception:  # created but tables not there yet
                pass
    return total


def wait_for_rows(
    folder_of: Callable[[], Optional[Path]],
    rows: int,
    proc: subprocess.Popen,
    timeout: float = 300,
    name: Optional[str] = None,
) -> Path:
    """Wait until the dump folder holds ``rows`` committed rows.

    Raises:
        AssertionError: The run ended first, or the timeout passed.
    """
    end = time.time() + timeout
    while time.time() < end:
        folder = folder_of()
        if folder is not None and committed_rows(folder, name) >= rows:
            return folder
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ''
            raise AssertionError(
                f'the run ended (code {proc.returncode}) before {rows} rows '
                f'were committed: {out[-3000:]}'
            )
        time.sleep(0.05)
    raise AssertionError(f'no {rows} rows after {timeout} s')


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a process (and wait for it)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def popen(cmd: List[str], cwd, dist: bool = False) -> subprocess.Popen:
    """Start ``cmd`` with this checkout importable, 1 thread (``dist``:
    the workers join a gloo process group)."""
    repo = str(Path(__file__).resolve().parents[2])
    path = os.environ.get('PYTHONPATH', '')
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        KILL_RUN_DIST='1' if dist else '0',
        PYTHONPATH=repo + (os.pathsep + path if path else ''),
    )
    return subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _main(config: str) -> None:
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(config)
    if DIST:
        import torch.distributed as dist

        dist.init_process_group('gloo')
        cfg.launcher = 'pytorch'
        cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
        )
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    rank = os.environ.get('RANK', '0')
    Path(cfg.work_dir, f'pid.rank{rank}').write_text(str(os.getpid()))
    Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    _main(sys.argv[1])
