"""Train, test or validate an MMPretrain config under ``torchrun``, on CPU.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and so fails
on a machine without a GPU, and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``, which DDP refuses for CPU modules. Without CUDA
this launcher creates the gloo process group itself before building the
Runner (which then skips its own init) and wraps the model in
``MMDistributedDataParallel`` with ``device_ids=None``; with CUDA it leaves
everything to MMEngine (nccl). Run without ``torchrun`` it is a plain
single-process run. Arguments follow MMPretrain's ``tools/train.py`` and
``tools/test.py``::

    torchrun --nproc_per_node=2 tools/dist_launch.py test CONFIG CKPT \\
        --work-dir work_dirs/x --cfg-options test_dataloader.batch_size=8
    torchrun --nproc_per_node=2 tools/dist_launch.py train CONFIG \\
        --work-dir work_dirs/x
"""

import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

PHASES = ('train', 'val', 'test')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments (see the module docstring)."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='MMPretrain train/val/test under torchrun (CPU: gloo)'
    )
    parser.add_argument('phase', choices=PHASES, help='What to run')
    parser.add_argument('config', help='Config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='Checkpoint to evaluate (val/test) or start from (train)',
    )
    parser.add_argument('--work-dir', help='Folder for logs and outputs')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='Override config settings, xxx=yyy format',
    )
    parser.add_argument(
        '--metrics-out',
        help='Rank 0 writes the metrics (and the world size) here as JSON',
    )
    return parser.parse_args(argv)


def distributed() -> bool:
    """Whether this process was started by ``torchrun`` (or similar)."""
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def build_config(args: argparse.Namespace):
    """The config with the launcher settings this machine needs.

    Args:
        args (argparse.Namespace): Parsed arguments.

    Returns:
        mmengine.Config: The config to build the Runner from.
    """
    import torch
    from mmengine.config import Config

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('work_dirs', name)
    if args.checkpoint:
        cfg.load_from = args.checkpoint
    if distributed():
        cfg.launcher = 'pytorch'
        if not torch.cuda.is_available():
            cfg.env_cfg = dict(cfg.get('env_cfg', {}))
            cfg.env_cfg['dist_cfg'] = dict(backend='gloo')
            cfg.model_wrapper_cfg = dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False,
            )
    else:
        cfg.launcher = 'none'
    return cfg


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Build the Runner and run the phase; the metrics (empty for train).

    Args:
        args (argparse.Namespace): Parsed arguments.

    Returns:
        dict: Metrics of the evaluation (val/test), ``{}`` for train.
    """
    import torch
    import torch.distributed as dist
    from mmengine.runner import Runner

    cfg = build_config(args)
    own_group = (
        distributed()
        and not torch.cuda.is_available()
        and not dist.is_initialized()
    )
    if own_group:
        dist.init_process_group('gloo')
    try:
        runner = Runner.from_cfg(cfg)
        if args.phase == 'train':
            runner.train()
            return {}
        return runner.val() if args.phase == 'val' else runner.test()
    finally:
        if own_group:
            dist.barrier()
            dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``tools/dist_launch.py``."""
    from .messages import quiet_known_warnings

    quiet_known_warnings()
    args = parse_args(argv)
    metrics = run(args)
    rank = int(os.environ.get('RANK', '0'))
    if args.metrics_out and rank == 0:
        world = int(os.environ.get('WORLD_SIZE', '1'))
        with open(args.metrics_out, 'w') as f:
            json.dump(dict(metrics=metrics, world_size=world), f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
