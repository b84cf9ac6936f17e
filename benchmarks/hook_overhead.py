"""Cost of ``CAMVisualizationHook`` per explained sample in a val loop.

Two MMEngine Runners on the same model and data, one with the hook
explaining the first ``num`` samples and one without, run ``val()``
alternately. The hook's cost per sample, ``(t_with - t_without) / num``,
is compared with the *standalone* cost of the same work outside a Runner:
:class:`~mmcam_ext.apis.CAMEngine` on the same batches plus writing the
same input and overlay PNGs.
"""

import os.path as osp
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

from .timing import interleaved_medians

__all__ = ['HookCase', 'hook_overhead']


@dataclass(frozen=True)
class HookCase:
    """The val set-up of the hook benchmark.

    Args:
        config: ``mmpretrain.get_model`` name whose ``model`` is used
            (head resized to the 3 shape classes, random weights).
        size: Side of the generated validation images.
        num: Samples the hook explains per evaluation.
        batch: Val batch size.
        method: CAM method.
    """

    config: str = 'resnet50_8xb32_in1k'
    size: int = 224
    num: int = 32
    batch: int = 16
    method: str = 'GradCAM'


def _val_cfg(case: HookCase, root: str, hook: Optional[dict]):
    from mmpretrain import get_model

    from .datasets.shapes_train import prepare_shapes_data, shapes_config

    data_root = osp.join(root, 'data')
    cfg = shapes_config('cnn', data_root, epochs=1)
    per_class = -(-case.num // 3)
    cfg.shapes_data.train_per_class = 1
    cfg.shapes_data.val_per_class = per_class
    prepare_shapes_data(data_root, cfg, (case.size, case.size), seed=0)
    model_cfg = get_model(case.config, pretrained=False)._config.model
    model_cfg.head.num_classes = 3
    model_cfg.pop('data_preprocessor', None)
    cfg.model = model_cfg
    cfg.val_dataloader.batch_size = case.batch
    cfg.test_dataloader = cfg.val_dataloader
    name = 'with_hook' if hook else 'without_hook'
    cfg.work_dir = osp.join(root, name)
    cfg.experiment_name = f'hook_bench_{name}_{id(cfg)}'
    cfg.custom_hooks = [hook] if hook else []
    cfg.visualizer = dict(
        type='CAMVisualizer', name=f'vis_{name}_{id(cfg)}', vis_backends=[]
    )
    return cfg


def _runners(case: HookCase, root: str):
    from mmengine.runner import Runner

    hook = dict(
        type='CAMVisualizationHook',
        methods=[case.method],
        samples=dict(mode='first', num=case.num, max_per_eval=case.num),
        output=dict(gallery=False, to_backends=False),
    )
    torch.manual_seed(0)
    with_hook = Runner.from_cfg(_val_cfg(case, root, hook))
    without = Runner.from_cfg(_val_cfg(case, root, None))
    without.model.load_state_dict(with_hook.model.state_dict())
    return with_hook, without


def _standalone(runner, case: HookCase, out_dir: Path) -> None:
    """The hook's work without the hook: explain + the same PNGs."""
    from mmcam_ext.apis.cam_engine import CAMEngine
    from mmcam_ext.fileio import write_png
    from mmcam_ext.utils.image import to_rgb
    from mmcam_ext.visualization.cam_visualizer import CAMVisualizer

    model = runner.model
    engine = CAMEngine(model)
    done = 0
    for batch in runner.val_dataloader:
        if done >= case.num:
            break
        take = min(case.num - done, len(batch['inputs']))
        inputs = model.data_preprocessor(batch, False)['inputs'][:take]
        res = engine.explain(inputs, [case.method])
        for j in range(take):
            image = to_rgb(batch['inputs'][j].numpy(), 'bgr')
            write_png(out_dir / f'{done + j:06d}_input.png', image)
            write_png(
                out_dir / f'{done + j:06d}_{case.method}.png',
                CAMVisualizer.overlay(image, res.maps[case.method][j, 0]),
            )
        done += take


def hook_overhead(
    case: HookCase, repeats: int = 3, root: Optional[str] = None
) -> Dict[str, float]:
    """Seconds: val with/without the hook, standalone; per-sample costs.

    Returns:
        ``with``, ``without``, ``standalone`` (medians, s) and
        ``hook_per_sample``, ``standalone_per_sample``, ``ratio``.
    """
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        with_hook, without = _runners(case, tmp)
        out = Path(tmp, 'standalone')
        out.mkdir()
        times = interleaved_medians(
            {
                'with': with_hook.val,
                'without': without.val,
                'standalone': lambda: _standalone(without, case, out),
            },
            repeats=repeats,
            warmup=1,
        )
        explained = _explained(with_hook)
    per_hook = (times['with'] - times['without']) / case.num
    per_alone = times['standalone'] / case.num
    return dict(
        times,
        explained=explained,
        hook_per_sample=per_hook,
        standalone_per_sample=per_alone,
        ratio=per_hook / per_alone,
    )


def _explained(runner) -> int:
    """Samples the hook dumped in its last evaluation (sanity check)."""
    folders = sorted(Path(runner.work_dir, 'cam').iterdir())
    return len(list(folders[-1].glob('*_input.png'))) if folders else 0
