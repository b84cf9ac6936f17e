"""Evaluate a config under ``torchrun`` with gloo on CPU; rank 0 writes
metrics.

The same launcher users run (``tools/dist_launch.py``, see
``mmcam_ext.cli.dist_launch`` for why MMEngine's own ``pytorch`` launcher
does not work on a CPU-only machine). As a script::

    torchrun --nproc_per_node=2 dist_run.py CONFIG OUT_JSON {val,test}

:func:`torchrun` runs it from a test, in ``tmp_path`` (MMEngine's
``collect_results_cpu`` leaves a ``.dist_test/`` folder in the working
directory).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from mmcam_ext.cli.dist_launch import main


def free_port() -> int:
    """A TCP port nobody listens on now (for the rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun_cmd(script, *args, nproc: int = 2):
    """``torchrun --nproc_per_node=N --master_port=P script args...``."""
    return [
        sys.executable,
        '-m',
        'torch.distributed.run',
        f'--nproc_per_node={nproc}',
        f'--master_port={free_port()}',
        str(script),
        *map(str, args),
    ]


def run_in(cmd, cwd, timeout: int = 540) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` with this checkout importable, 1 thread."""
    repo = str(Path(__file__).resolve().parents[2])
    path = os.environ.get('PYTHONPATH', '')
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=repo + (os.pathsep + path if path else ''),
    )
    return subprocess.run(
        cmd,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def torchrun(cfg, tmp_path, phase: str = 'val') -> dict:
    """Dump ``cfg``, evaluate it under 2-process ``torchrun`` in
    ``tmp_path``; the metrics and world size rank 0 wrote."""
    cfg_file = Path(tmp_path) / 'dist_cfg.py'
    cfg.dump(str(cfg_file))
    out = Path(tmp_path) / 'dist_metrics.json'
    res = run_in(torchrun_cmd(__file__, cfg_file, out, phase), tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(out.read_text())


if __name__ == '__main__':
    config, out, phase = sys.argv[1:4]
    sys.exit(main([phase, config, '--metrics-out', out]))
