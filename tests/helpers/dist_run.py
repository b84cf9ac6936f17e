"""Evaluate a config under ``torchrun`` with gloo on CPU; rank 0 writes
metrics.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and fails
without a GPU, so the process group is created here before the Runner (which
then skips its own init), as docs/UPSTREAM.md records. Usage::

    torchrun --nproc_per_node=2 dist_run.py CONFIG OUT_JSON {val,test}
"""

import json
import sys

import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner


def main(config: str, out: str, phase: str) -> None:
    dist.init_process_group('gloo')
    cfg = Config.fromfile(config)
    cfg.launcher = 'pytorch'
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
    )
    runner = Runner.from_cfg(cfg)
    metrics = runner.val() if phase == 'val' else runner.test()
    if dist.get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(
                dict(metrics=metrics, world_size=dist.get_world_size()), f
            )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main(*sys.argv[1:4])
