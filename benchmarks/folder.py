"""Folder throughput and time to first map: our tool vs MMPretrain's.

Both tools run as users run them, in fresh processes, so start-up (Python
imports, model building, checkpoint loading) is included: ours once for the
whole folder, MMPretrain's ``tools/visualization/vis_cam.py`` once per image
(it takes one image). MMPretrain's script is copied at run time into a
temporary folder and patched only where it no longer runs on this stack:
its ``import pkg_resources`` line and its ``use_cuda=`` argument (removed in
grad-cam 1.5). Its code is never stored in this repository.
"""

import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'MMPRETRAIN_PATCHES',
    'patched_mmpretrain_vis_cam',
    'write_images',
    'save_random_checkpoint',
    'ToolRun',
    'run_tool',
    'our_tool_cmd',
    'mmpretrain_tool_cmd',
    'import_seconds',
    'IMPORTS',
]

#: What each tool imports before it can explain (module-level imports of
#: tools/vis_cam.py, and of MMPretrain's vis_cam.py).
IMPORTS = {
    'ours (tools/vis_cam.py)': (
        'import mmcam_ext.apis, mmcam_ext.visualization, mmcam_ext.methods'
    ),
    'MMPretrain vis_cam.py': (
        'import mmpretrain.apis, mmpretrain.registry, pytorch_grad_cam'
    ),
    'mmpretrain alone': 'import mmpretrain.apis, mmpretrain.registry',
}

#: (old, new) text replacements applied to MMPretrain 1.2.0's vis_cam.py.
MMPRETRAIN_PATCHES = (
    ('import pkg_resources\n', ''),
    (', use_cuda=use_cuda)', ')'),
)
REPO_ROOT = Path(__file__).resolve().parents[1]


def patched_mmpretrain_vis_cam(out_dir: str) -> str:
    """Write the patched copy of MMPretrain's ``vis_cam.py``; its path."""
    import mmpretrain

    src_path = osp.join(
        osp.dirname(mmpretrain.__file__),
        '.mim',
        'tools',
        'visualization',
        'vis_cam.py',
    )
    src = Path(src_path).read_text()
    for old, new in MMPRETRAIN_PATCHES:
        if src.count(old) != 1:
            raise RuntimeError(
                f'{src_path} changed: cannot patch {old!r}; '
                'the benchmark targets MMPretrain 1.2.0.'
            )
        src = src.replace(old, new)
    dst = osp.join(out_dir, 'mmpretrain_vis_cam.py')
    Path(dst).write_text(src)
    return dst


def write_images(
    folder: str, num: int, size: Tuple[int, int] = (256, 320), seed: int = 0
) -> List[str]:
    """``num`` JPEG photos-to-be (smooth noise plus a bright blob)."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    h, w = size
    for i in range(num):
        small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        cx, cy = int(rng.integers(40, w - 40)), int(rng.integers(40, h - 40))
        cv2.circle(img, (cx, cy), 30, (40, 220, 250), -1)
        path = osp.join(folder, f'img_{i:04d}.jpg')
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


def save_random_checkpoint(
    config: str, out_dir: str, seed: int = 0
) -> Tuple[str, str]:
    """Dump the config of a model name and a random-init checkpoint.

    Returns:
        ``(config_path, checkpoint_path)`` for both tools.
    """
    import torch
    from mmpretrain import get_model

    torch.manual_seed(seed)
    model = get_model(config, pretrained=False)
    cfg_path = osp.join(out_dir, f'{config}.py')
    model._config.dump(cfg_path)
    ckpt = osp.join(out_dir, f'{config}_random.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return cfg_path, ckpt


@dataclass
class ToolRun:
    """One tool process: wall seconds and seconds until its first map."""

    total: float
    first_map: Optional[float]
    maps: int


def _count_maps(folder: str) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.name.endswith('.png'))
    except FileNotFoundError:
        return 0


def run_tool(
    cmd: Sequence[str], out_dir: str, poll: float = 0.01, timeout: float = 1800
) -> ToolRun:
    """Run ``cmd``; time it and the appearance of the first PNG in
    ``out_dir`` (process start -> first map written)."""
    os.makedirs(out_dir, exist_ok=True)
    before = _count_maps(out_dir)
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=str(REPO_ROOT),
        env=dict(os.environ, MPLBACKEND='Agg'),
    )
    first = None
    while proc.poll() is None:
        if first is None and _count_maps(out_dir) > before:
            first = time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            proc.kill()
            raise TimeoutError(f'{cmd[:3]} ran over {timeout} s.')
        time.sleep(poll)
    total = time.perf_counter() - start
    err = proc.stderr.read().decode(errors='replace')
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{err[-3000:]}')
    maps = _count_maps(out_dir) - before
    if first is None and maps:
        first = total
    return ToolRun(total, first, maps)


def our_tool_cmd(
    images: str,
    config: str,
    ckpt: str,
    out_dir: str,
    batch_size: int = 16,
    num_workers: int = 2,
    device: str = 'cpu',
) -> List[str]:
    """``tools/vis_cam.py`` on a folder, in one process."""
    return [
        sys.executable,
        str(REPO_ROOT / 'tools' / 'vis_cam.py'),
        images,
        config,
        ckpt,
        '--out-dir',
        out_dir,
        '--batch-size',
        str(batch_size),
        '--num-workers',
        str(num_workers),
        '--device',
        device,
        '--overwrite',
    ]


def mmpretrain_tool_cmd(
    script: str,
    image: str,
    config: str,
    ckpt: str,
    out_dir: str,
    vit_like: bool,
    device: str = 'cpu',
) -> List[str]:
    """MMPretrain's ``vis_cam.py`` on one image (its only mode)."""
    save = osp.join(out_dir, osp.splitext(osp.basename(image))[0] + '.png')
    cmd = [
        sys.executable,
        script,
        image,
        config,
        ckpt,
        '--method',
        'GradCAM',
        '--save-path',
        save,
        '--device',
        device,
    ]
    return cmd + (['--vit-like'] if vit_like else [])


def import_seconds(statement: str, repeats: int = 3) -> float:
    """Median seconds a fresh interpreter spends on ``statement`` (an
    import), measured inside the process (interpreter start excluded)."""
    code = (
        'import time; t = time.perf_counter(); '
        + statement
        + '; print(time.perf_counter() - t)'
    )
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, '-c', code],
            capture_output=True,
            text=True,
            check=True,
            cwd=str(REPO_ROOT),
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return float(np.median(times))
