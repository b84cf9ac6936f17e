"""Visualise class-activation maps of an MMPretrain classifier.

A drop-in for MMPretrain's ``tools/visualization/vis_cam.py`` (same
arguments, same meaning) that also takes several images, a directory or a
glob, several methods (one side-by-side grid per image), batches, top-k
targets and raw ``.npy`` maps. ``--vit-like`` and ``--num-extra-tokens`` are
no longer needed: the resolver knows each backbone's layout.

Run as ``python tools/vis_cam.py``, ``mim run mmcam_ext vis_cam`` or
``mmcam-vis-cam``; all three call :func:`main`.

Example:
    python tools/vis_cam.py demo/ CONFIG CKPT --method gradcam gradcam++ \\
        --out-dir work_dirs/cams --save-raw
"""

import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Set, cast

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

from mmcam_ext.apis import CAMInferencer, ImageLoadError, list_images
from mmcam_ext.apis.data import unique_prefix
from mmcam_ext.checkpoint import CheckpointError
from mmcam_ext.methods import build_method, method_names
from mmcam_ext.methods.base import method_configs, parse_method_options
from mmcam_ext.visualization import CAMVisualizer, draw_cam_rows

DEFAULT_OUT_DIR = osp.join('work_dirs', 'vis_cam')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualize CAM')
    parser.add_argument(
        'img', nargs='+', help='Image file(s), a directory or a glob pattern'
    )
    parser.add_argument('config', help='Config file')
    parser.add_argument('checkpoint', help='Checkpoint file')
    parser.add_argument(
        '--target-layers',
        default=[],
        nargs='+',
        type=str,
        help='Layers to explain; default: chosen per backbone '
        'family by the resolver (see --preview-model)',
    )
    parser.add_argument(
        '--preview-model',
        action='store_true',
        help='Print the model and its layer names, then exit',
    )
    parser.add_argument(
        '--method',
        default=['GradCAM'],
        nargs='+',
        help='One or several CAM methods (case-insensitive): '
        f'{", ".join(method_names())}',
    )
    parser.add_argument(
        '--method-options',
        nargs='+',
        default=[],
        metavar='METHOD.OPTION=VALUE',
        help='Options of the methods, e.g. rollout.head_fusion=max '
        'rollout.discard_ratio=0.9 scorecam.mask_batch_size=16 '
        "(see each method's constructor)",
    )
    parser.add_argument(
        '--target-category',
        default=[],
        nargs='+',
        type=int,
        help='Classes to explain (each image explains all of '
        'them); default: the top --topk predictions',
    )
    parser.add_argument(
        '--topk',
        type=int,
        default=1,
        help='Explain the top-k predicted classes',
    )
    parser.add_argument(
        '--eigen-smooth',
        action='store_true',
        help='First principal component of the weighted activations',
    )
    parser.add_argument(
        '--aug-smooth',
        action='store_true',
        help='Test-time augmentation smoothing',
    )
    parser.add_argument(
        '--save-path',
        help='File for the CAM of a single image (MMPretrain behaviour)',
    )
    parser.add_argument(
        '--out-dir',
        help='Folder for one grid per image; '
        f'default {DEFAULT_OUT_DIR} when --save-path is unset',
    )
    parser.add_argument(
        '--save-raw',
        action='store_true',
        help='Also write float maps (K, H, W) as .npy',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='Replace existing output files',
    )
    parser.add_argument(
        '--show',
        action='store_true',
        help='Also display each grid in a window',
    )
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='DataLoader workers decoding images',
    )
    parser.add_argument('--device', default='cpu', help='Device to use')
    parser.add_argument(
        '--vit-like',
        action='store_true',
        help='Accepted for compatibility and ignored',
    )
    parser.add_argument(
        '--num-extra-tokens',
        type=int,
        help='Override the extra (cls/dist) token count',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='Override config settings, xxx=yyy format',
    )
    return parser.parse_args(argv)


def plan_outputs(args, images: List[str], methods: List[str]) -> List[str]:
    """One free output prefix per image (never a user's existing file)."""
    if args.save_path:
        if len(images) != 1:
            raise ValueError(
                f'--save-path takes one image, got {len(images)}'
                '; use --out-dir for several.'
            )
        prefix = osp.splitext(args.save_path)[0]
        files = [args.save_path] + (
            [f'{prefix}_{m}.npy' for m in methods] if args.save_raw else []
        )
        existing = [f for f in files if osp.exists(f)]
        if existing and not args.overwrite:
            raise ValueError(
                f'{", ".join(existing)} exists; pass --overwrite'
                ' to replace it or choose another --save-path.'
            )
        os.makedirs(osp.dirname(osp.abspath(args.save_path)), exist_ok=True)
        return [prefix]
    out_dir = args.out_dir or DEFAULT_OUT_DIR
    os.makedirs(out_dir, exist_ok=True)
    suffixes = ['_cam.png'] + [f'_{m}.npy' for m in methods]
    taken: Set[str] = set()
    return [
        unique_prefix(
            out_dir,
            osp.splitext(osp.basename(p))[0],
            suffixes,
            taken,
            args.overwrite,
        )
        for p in images
    ]


def save_result(
    vis: CAMVisualizer, res: dict, prefix: str, png: str, classes, args
) -> None:
    """Write the grid (and raw maps) of one image."""
    picture = draw_cam_rows(
        vis,
        res['image'],
        res['maps'],
        res['targets'],
        res['target_scores'],
        pred_label=res['pred_label'],
        pred_score=res['pred_score'],
        classes=classes,
        out_file=png,
        name=osp.basename(prefix),
    )
    if args.show:
        vis.show(picture, win_name=osp.basename(prefix))
    if args.save_raw:
        for method, cam in res['maps'].items():
            np.save(f'{prefix}_{method}.npy', cam)


def run(args) -> Dict[str, str]:
    """Explain every image; return ``{input: output png}``."""
    if args.vit_like:
        print(
            'Note: --vit-like is no longer needed and is ignored; the '
            'token layout is resolved per backbone.'
        )
    configs = method_configs(
        args.method, parse_method_options(args.method_options)
    )
    methods = [build_method(c).name for c in configs]
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = CAMInferencer(
        cfg,
        args.checkpoint,
        args.device,
        args.target_layers or None,
        args.num_extra_tokens,
    )
    if args.preview_model:
        print(inferencer.model)
        print('\nLayer names (for --target-layers):')
        print('\n'.join(n for n, _ in inferencer.model.named_modules() if n))
        return {}
    # args.img holds command-line strings, which list_images expands into
    # path strings only (arrays come only from an array input).
    images = cast(List[str], list_images(args.img))
    prefixes = plan_outputs(args, images, methods)
    targets = _targets(args.target_category, len(images))
    vis = CAMVisualizer(name='vis_cam')
    bar = (
        ProgressBar(len(images), file=sys.stderr) if len(images) > 1 else None
    )
    written: Dict[str, str] = {}
    results = inferencer.iter_results(
        images,
        configs,
        targets,
        args.topk,
        args.batch_size,
        args.aug_smooth,
        args.eigen_smooth,
        args.num_workers,
    )
    for i, res in enumerate(results):
        png = args.save_path or f'{prefixes[i]}_cam.png'
        save_result(vis, res, prefixes[i], png, inferencer.classes, args)
        written[images[i]] = png
        if bar is not None:
            bar.update()
    return written


def _targets(categories: List[int], num_images: int):
    if not categories:
        return None
    if len(categories) == 1:
        return categories[0]
    return np.tile(np.asarray(categories)[None], (num_images, 1))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        written = run(args)
    except (
        KeyError,
        ValueError,
        FileNotFoundError,
        ImageLoadError,
        CheckpointError,
    ) as err:
        msg = err.args[0] if err.args else repr(err)
        print(f'\nvis_cam.py: error: {msg}', file=sys.stderr)
        return 2
    if written:
        first = next(iter(written.values()))
        where = first if len(written) == 1 else osp.dirname(first)
        print(f'\nSaved {len(written)} CAM image(s) to {where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
