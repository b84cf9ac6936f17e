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
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Set, cast

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

from mmcam_ext.apis import CAMInferencer, ImageLoadError, list_images
from mmcam_ext.apis.data import unique_prefix
from mmcam_ext.checkpoint import CheckpointError
from mmcam_ext.errors import OutputError
from mmcam_ext.fileio import (
    CAMWriter,
    SampleCAMs,
    WriterOptions,
    write_index,
)
from mmcam_ext.methods import build_method, method_names
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
        help='Also write the float maps into a dump folder (raw/ under '
        '--out-dir, <save-path>_raw/ with --save-path): index.json and a '
        'few (N, H, W) arrays; read them with mmcam_ext.fileio.load_cams',
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
            [raw_dump_dir(args)] if args.save_raw else []
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
    suffixes = ['_cam.png']
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


def raw_dump_dir(args) -> str:
    """The dump folder of ``--save-raw`` (never an existing one's files).

    ``<save-path stem>_raw`` with ``--save-path`` (refused by
    :func:`plan_outputs` when it exists, unless ``--overwrite``);
    otherwise ``<out-dir>/raw``, or ``raw_1``, ``raw_2``... when taken.
    """
    if args.save_path:
        return osp.splitext(args.save_path)[0] + '_raw'
    base = osp.join(args.out_dir or DEFAULT_OUT_DIR, 'raw')
    folder, n = base, 0
    while not args.overwrite and osp.exists(folder):
        n += 1
        folder = f'{base}_{n}'
    return folder


def open_writer(args) -> CAMWriter:
    """The shared writer: grids in the background, raw maps in a store."""
    folder = raw_dump_dir(args) if args.save_raw else '.'
    return CAMWriter(
        folder,
        WriterOptions(
            save_images=False, save_raw=bool(args.save_raw), thumbnails=False
        ),
    )


def save_result(
    vis: CAMVisualizer,
    res: dict,
    prefix: str,
    png: str,
    classes,
    args,
    writer: CAMWriter,
    index: int = 0,
) -> None:
    """Queue the grid (and raw maps) of one image on the shared writer.

    The grid is drawn and encoded by the writer's thread, so the next
    batch runs meanwhile; with ``--show`` it is drawn here, because the
    window belongs to this thread.
    """
    draw = partial(
        draw_cam_rows,
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
        vis.show(draw(), win_name=osp.basename(prefix))
    else:
        writer.submit(draw)
    if args.save_raw:
        writer.add(_sample(res, prefix, png, index, writer.folder, args))


def _sample(res: dict, prefix: str, png: str, index: int, folder, args):
    """One image's maps for the writer; target kinds ``top1..topK`` or
    ``category1..K`` (given ``--target-category``)."""
    kind = 'category' if args.target_category else 'top'
    return SampleCAMs(
        index=index,
        stem=osp.basename(prefix),
        image=res['image'],
        maps=res['maps'],
        kinds=[f'{kind}{k + 1}' for k in range(len(res['targets']))],
        targets=[int(t) for t in res['targets']],
        target_scores=[float(s) for s in res['target_scores']],
        blank=res.get('blank', {}),
        info=dict(
            img_path=res['img_path'] or '',
            gt=None,
            pred=res['pred_label'],
            score=res['pred_score'],
            misclassified=False,
            rank=0,
            file=osp.relpath(osp.abspath(png), osp.abspath(folder)),
        ),
    )


def finish_writer(writer: CAMWriter, args, methods: List[str]) -> None:
    """Wait for the writer; write the raw dump's index; refuse lost files.

    Raises:
        OutputError: When a grid or map could not be written.
    """
    errors = writer.close()
    if args.save_raw:
        writer.folder.mkdir(parents=True, exist_ok=True)
        write_index(
            Path(writer.folder),
            writer.rows,
            'json',
            dict(methods=methods, config=args.config, tool='vis_cam'),
        )
    if errors:
        raise OutputError(
            f'{len(errors)} output file(s) could not be written: '
            + '; '.join(errors[:3])
        )


def run(args) -> Dict[str, str]:
    """Explain every image; return ``{input: output png}``."""
    if args.vit_like:
        print(
            'Note: --vit-like is no longer needed and is ignored; the '
            'token layout is resolved per backbone.'
        )
    methods = [build_method(m).name for m in args.method]
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
        methods,
        targets,
        args.topk,
        args.batch_size,
        args.aug_smooth,
        args.eigen_smooth,
        args.num_workers,
    )
    writer = open_writer(args)
    try:
        for i, res in enumerate(results):
            png = args.save_path or f'{prefixes[i]}_cam.png'
            save_result(
                vis, res, prefixes[i], png, inferencer.classes, args, writer, i
            )
            written[images[i]] = png
            if bar is not None:
                bar.update()
    except BaseException:
        writer.close()  # what was queued is still written
        raise
    finish_writer(writer, args, methods)
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
        OutputError,
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
