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
import os.path as osp
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import (
    Any,
    Dict,
    List,
    NoReturn,
    Optional,
    Sequence,
    Set,
    Tuple,
    cast,
)

import numpy as np
from mmengine.config import DictAction
from mmengine.utils import ProgressBar
from torch import nn

from mmcam_ext.apis import CAMInferencer, list_images
from mmcam_ext.apis.checks import (
    check_device,
    check_methods,
    class_indices,
)
from mmcam_ext.apis.data import InputLimits, unique_prefix
from mmcam_ext.apis.inferencer import load_config
from mmcam_ext.apis.views import ViewOptions
from mmcam_ext.cli.method_options import parse_method_options
from mmcam_ext.errors import (
    InputError,
    MMCamError,
    MMCamWarning,
    OutputError,
)
from mmcam_ext.fileio import (
    CAMSample,
    CAMWriter,
    WriterOptions,
    read_shard,
    write_index,
)
from mmcam_ext.methods import method_names
from mmcam_ext.methods.builder import method_configs
from mmcam_ext.utils.image import class_text
from mmcam_ext.utils.model import model_fingerprint
from mmcam_ext.visualization import CAMVisualizer, draw_cam_rows

from .checks import (
    check_display,
    check_output_dir,
    check_save_path,
    class_arg,
    ensure_dir,
    int_at_least,
    positive_float,
)
from .messages import cli_message, quiet_known_warnings, report

DEFAULT_OUT_DIR = osp.join('work_dirs', 'vis_cam')
PROG = 'vis_cam.py'
#: Exit codes: done; a user's mistake (nothing written, one line on
#: stderr); done, but some inputs were skipped (see --skip-bad-images).
EXIT_OK, EXIT_USAGE, EXIT_SKIPPED = 0, 2, 3
LIMITS = InputLimits()
#: RGB colour of the box marking the part of the photo the model saw.
BOX_COLOR = (255, 255, 255)


class CfgOptionsAction(DictAction):
    """MMEngine's ``DictAction`` with a usage error for a pair without ``=``.

    ``DictAction`` raises a bare ``ValueError`` (a traceback) for
    ``--cfg-options foo``.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in values if '=' not in v]
        if bad:
            raise argparse.ArgumentError(
                self,
                f'expected KEY=VALUE pairs, got {bad[0]!r} (e.g. '
                'model.head.num_classes=10)',
            )
        super().__call__(parser, namespace, values, option_string)


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors in two lines (the error, then where help is)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` and a pointer to ``--help``; exit with 2."""
        report(self.prog, 'error', message)
        print(f'(see {self.prog} --help)', file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (MMPretrain's arguments plus ours).

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.
            Defaults to None.

    Returns:
        argparse.Namespace: The arguments. Malformed numbers and
        ``--cfg-options`` pairs exit with code 2 here.
    """
    parser = ArgumentParser(prog=PROG, description='Visualize CAM')
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
        type=class_arg,
        help='Classes to explain, as indices or class names of the model '
        '(each image explains all of them); default: the top --topk '
        'predictions',
    )
    parser.add_argument(
        '--topk',
        type=int_at_least(1),
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
        'few (N, H, W) arrays, evidence descriptors and a streaming '
        'index (a killed run keeps every image done: finish it with '
        '"python -m mmcam_ext dump finish DIR"); read them with '
        'mmcam_ext.fileio.load_cams',
    )
    parser.add_argument(
        '--no-descriptors',
        action='store_true',
        help='With --save-raw, do not store the evidence descriptors '
        '(used by python -m mmcam_ext patterns / mine)',
    )
    parser.add_argument(
        '--signed',
        action='store_true',
        help='Draw the signed maps before the ReLU (red for, blue against '
        'the class) instead of the [0, 1] maps',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='Replace existing output files (never an input image)',
    )
    parser.add_argument(
        '--show',
        action='store_true',
        help='Also display each grid in a window (needs a display)',
    )
    parser.add_argument('--batch-size', type=int_at_least(1), default=8)
    parser.add_argument(
        '--num-workers',
        type=int_at_least(0),
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
        type=int_at_least(0),
        help='Override the extra (cls/dist) token count',
    )
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='Load a checkpoint whose keys or shapes do not all match the '
        'model (the rest stays randomly initialised) with a warning, '
        'instead of refusing it',
    )
    parser.add_argument(
        '--skip-bad-images',
        action='store_true',
        help='Exit 0 when some inputs were unreadable and skipped (they are '
        f'always skipped with a warning; without this flag the exit code is '
        f'{EXIT_SKIPPED})',
    )
    parser.add_argument(
        '--max-image-pixels',
        type=int_at_least(1),
        default=LIMITS.max_image_pixels,
        help='Refuse images with more decoded pixels (height x width); '
        'default %(default)s',
    )
    parser.add_argument(
        '--max-input-pixels',
        type=int_at_least(1),
        default=LIMITS.max_input_pixels,
        help='Refuse an image whose model input (after the test pipeline) '
        'has more pixels, and split batches above it; default %(default)s',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='Override config settings, xxx=yyy format',
    )
    add_view_args(parser)
    return parser.parse_args(argv)


def add_view_args(parser: argparse.ArgumentParser) -> None:
    """The whole-image and multi-scale flags (see docs/whole_image.md).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    group = parser.add_argument_group('whole image and scales')
    group.add_argument(
        '--whole-image',
        action='store_true',
        help="Feed the whole photo: the test pipeline's crop is replaced by "
        'a resize that keeps the aspect ratio (short edge at the crop '
        'size, or --input-size); maps are drawn on the photo',
    )
    group.add_argument(
        '--input-size',
        type=int_at_least(8),
        help='Short edge of the model input with --whole-image; default: '
        "the config's crop size",
    )
    group.add_argument(
        '--scales',
        nargs='+',
        type=positive_float,
        default=[1.0],
        help='Explain the photo at each scale (every pipeline size times '
        'the scale) and fuse the maps on the photo, e.g. --scales 1 2',
    )
    group.add_argument(
        '--scale-fusion',
        choices=('mean', 'max'),
        default='mean',
        help='How the maps of --scales are fused',
    )
    group.add_argument(
        '--tile-size',
        type=int_at_least(64),
        help='Explain a scale whose input has an edge above this in '
        'overlapping tiles of this size, blended (memory bounded by the '
        'tile); not the first scale; default: no tiles',
    )
    group.add_argument(
        '--tile-overlap',
        type=int_at_least(0),
        help='Input pixels shared by neighbouring tiles; default: a '
        'quarter of --tile-size',
    )
    group.add_argument(
        '--draw-on',
        choices=('input', 'original'),
        help='Draw on the model input or on the original photo at its own '
        'resolution (the part the model saw is boxed); default: original '
        'with --whole-image or --scales, else input',
    )


def view_options(args: argparse.Namespace) -> ViewOptions:
    """The :class:`ViewOptions` of the parsed flags.

    Args:
        args (argparse.Namespace): The parsed arguments.

    Returns:
        ViewOptions: How photos are fed and where maps are drawn.
    """
    if args.input_size is not None and not args.whole_image:
        raise InputError('--input-size applies with --whole-image only.')
    return ViewOptions(
        whole_image=args.whole_image,
        input_size=args.input_size,
        scales=tuple(args.scales),
        scale_fusion=args.scale_fusion,
        draw_on=args.draw_on,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
    )


def check_args(args: argparse.Namespace) -> None:
    """Checks that need no model, run first (``--show`` before all).

    Args:
        args (argparse.Namespace): The parsed arguments.

    Raises:
        MMCamError: A wrong flag, naming it.
    """
    if args.show:
        check_display()
    if args.save_path and args.out_dir:
        raise InputError(
            '--save-path (one image file) and --out-dir (a folder) exclude '
            'each other; give one.'
        )
    if args.save_path:
        check_save_path(args.save_path)
    else:
        check_output_dir(args.out_dir or DEFAULT_OUT_DIR)
    check_device(args.device)
    if args.target_category and args.topk != 1:
        report(PROG, 'warning', '--topk is ignored: --target-category given.')


def _protect_inputs(
    prefix: str, suffixes: List[str], inputs: Set[str]
) -> bool:
    """Whether any output of ``prefix`` would be one of the input files."""
    return any(osp.realpath(prefix + s) in inputs for s in suffixes)


def plan_outputs(args, images: List[str], methods: List[str]) -> List[str]:
    """One free output prefix per image.

    Never a user's existing file (unless ``--overwrite``), never an input
    image, and no folder is created yet (see :func:`ensure_dir`).

    Args:
        args (argparse.Namespace): The parsed arguments.
        images (list[str]): The input paths.
        methods (list[str]): Method names (for ``--save-raw`` files).

    Returns:
        list[str]: One prefix per image (``<out>/<stem>[_n]``).

    Raises:
        MMCamError: ``--save-path`` misuse, or an existing file.
    """
    inputs = {osp.realpath(p) for p in images}
    if args.save_path:
        if len(images) != 1:
            raise InputError(
                f'--save-path takes one image, got {len(images)}'
                '; use --out-dir for several.'
            )
        prefix = osp.splitext(args.save_path)[0]
        files = [args.save_path] + (
            [raw_dump_dir(args)] if args.save_raw else []
        )
        if any(osp.realpath(f) in inputs for f in files):
            raise OutputError(
                f'--save-path {args.save_path!r} would overwrite the input '
                'image; choose another --save-path.'
            )
        existing = [f for f in files if osp.exists(f)]
        if existing and not args.overwrite:
            raise OutputError(
                f'{", ".join(existing)} exists; pass --overwrite'
                ' to replace it or choose another --save-path.'
            )
        return [prefix]
    out_dir = args.out_dir or DEFAULT_OUT_DIR
    suffixes = ['_cam.png']
    taken: Set[str] = set()
    prefixes = []
    for path in images:
        stem = osp.splitext(osp.basename(path))[0]
        prefix = unique_prefix(out_dir, stem, suffixes, taken, args.overwrite)
        while _protect_inputs(prefix, suffixes, inputs):
            prefix = unique_prefix(
                out_dir, stem, suffixes, taken, args.overwrite
            )
        prefixes.append(prefix)
    return prefixes


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


def writer_options(args) -> WriterOptions:
    """The writer's options for these arguments (checked there)."""
    return WriterOptions(
        save_images=False,
        save_raw=bool(args.save_raw),
        thumbnails=False,
        descriptors=not args.no_descriptors,
        signed=bool(args.signed),
        index=bool(args.save_raw),
    )


def open_writer(
    args, images: Sequence[str] = (), model: Optional[nn.Module] = None
) -> CAMWriter:
    """The shared writer: grids in the background; with ``--save-raw``
    raw maps, descriptors and the streaming index of the dump folder (a
    killed run keeps every committed image; ``python -m mmcam_ext dump
    finish`` writes its index). The index meta records the config, the
    inputs and the model's fingerprint (compared by pattern mining)."""
    folder = raw_dump_dir(args) if args.save_raw else '.'
    writer = CAMWriter(folder, writer_options(args))
    if args.save_raw:
        meta: Dict[str, Any] = dict(config=args.config, tool='vis_cam')
        if model is not None:
            meta['model_fingerprint'] = model_fingerprint(model)
        writer.set_meta(meta)
        writer.expect(range(len(images)), list(images))
    return writer


def save_result(
    vis: CAMVisualizer,
    res: dict,
    prefix: str,
    png: str,
    classes,
    args,
    writer: Optional[CAMWriter] = None,
    index: int = 0,
) -> Optional[np.ndarray]:
    """Write the grid (and raw maps) of one image, through the writer.

    With a ``writer`` the grid is drawn and encoded by its thread, so the
    next batch runs meanwhile, and raw maps go to its store; without one
    (or with ``--show``, whose window belongs to this thread) the grid is
    drawn here.

    Args:
        vis (CAMVisualizer): Draws the grid.
        res (dict): One result of :meth:`CAMInferencer.iter_results`.
        prefix (str): Output prefix of this image.
        png (str): The grid's file.
        classes (Sequence[str], optional): Class names.
        args (argparse.Namespace): The parsed arguments.
        writer (CAMWriter, optional): The shared writer. Defaults to None.
        index (int): The image's number in this run. Defaults to 0.

    Returns:
        np.ndarray | None: The grid (RGB) when drawn here.
    """
    draw = partial(
        _draw_grid,
        vis,
        drawn_image(res),
        res['raw_maps'] if args.signed else res['maps'],
        res['targets'],
        res['target_scores'],
        signed=args.signed,
        pred_label=res['pred_label'],
        pred_score=res['pred_score'],
        classes=classes,
        out_file=png,
        name=osp.basename(prefix),
    )
    if args.save_raw and writer is not None:
        writer.add(_sample(res, prefix, png, index, writer.folder, args))
    if writer is None or args.show:
        return draw()
    writer.submit(draw)
    return None


def drawn_image(res: dict) -> np.ndarray:
    """The picture the maps are drawn on: the result's image, with the part
    of the photo the model saw boxed when it saw only part of it.

    Args:
        res (dict): One result of :meth:`CAMInferencer.iter_results`.

    Returns:
        np.ndarray: ``HxWx3`` uint8 RGB (a copy when a box is drawn).
    """
    box = res.get('view_box')
    if box is None:
        return res['image']
    import cv2

    image = np.ascontiguousarray(res['image']).copy()
    thickness = max(1, round(min(image.shape[:2]) / 200))
    x0, y0, x1, y1 = box
    cv2.rectangle(
        image, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOR, thickness=thickness
    )
    return image


def _draw_grid(*args, out_file: str, **kwargs) -> np.ndarray:
    """:func:`draw_cam_rows`, naming the file when it cannot be written."""
    try:
        return draw_cam_rows(*args, out_file=out_file, **kwargs)
    except OSError as err:
        raise OSError(f'Cannot write {out_file!r}: {err}') from None


def _write(
    vis: CAMVisualizer,
    res: dict,
    prefix: str,
    png: str,
    classes,
    args,
    writer: CAMWriter,
    index: int,
) -> None:
    """:func:`save_result` with its folder made now and clear errors."""
    flag = '--save-path folder' if args.save_path else '--out-dir'
    ensure_dir(osp.dirname(osp.abspath(png)), flag)
    try:
        picture = save_result(
            vis, res, prefix, png, classes, args, writer, index
        )
    except OSError as err:
        raise OutputError(f'Cannot write {png!r}: {err}') from None
    if args.show:
        try:
            vis.show(picture, win_name=osp.basename(prefix))
        except Exception as err:  # tk/qt errors of a display that fails
            raise OutputError(
                f'--show cannot open a window ({type(err).__name__}: {err}); '
                'drop --show.'
            ) from None


def _sample(res: dict, prefix: str, png: str, index: int, folder, args):
    """One image's maps for the writer; target kinds ``top1..topK`` or
    ``category1..K`` (given ``--target-category``)."""
    kind = 'category' if args.target_category else 'top'
    return CAMSample(
        index=index,
        stem=osp.basename(prefix),
        image=res['image'],
        maps=res['maps'],
        raw_maps=res['raw_maps'],
        kinds=[f'{kind}{k + 1}' for k in range(len(res['targets']))],
        targets=[int(t) for t in res['targets']],
        target_scores=[float(s) for s in res['target_scores']],
        blank=res.get('blank', {}),
        descriptors=res.get('descriptors', {}),
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


def finish_writer(writer: CAMWriter, args) -> None:
    """Wait for the writer; write the raw dump's index; refuse lost files.

    Raises:
        OutputError: When a grid or map could not be written.
    """
    errors = writer.close()
    rows = writer.read_rows() if args.save_raw else []
    if rows:
        meta = read_shard(writer.index_path)[0]
        meta.update(
            methods=sorted({r['method'] for r in rows}),
            config=args.config,
            tool='vis_cam',
        )
        write_index(Path(writer.folder), rows, 'json', meta)
    if errors:
        raise OutputError(
            f'{len(errors)} output file(s) could not be written: '
            + '; '.join(errors[:3])
        )


def _warn_blank(image: str, res: dict, classes, warn) -> None:
    """One warning per image whose maps are zero everywhere."""
    blank = [
        f'{method} for class {class_text(int(t), classes)}'
        for method, flags in res.get('blank', {}).items()
        for t, flag in zip(res['targets'], flags)
        if flag
    ]
    if blank:
        layers = ', '.join(res.get('target_layers', ())) or 'the target layer'
        warn(
            f'{image}: the map of {"; ".join(blank)} is zero everywhere '
            f'after the ReLU: no positive evidence for this class at '
            f'{layers}. It is written blank; try another --method (e.g. '
            'gradcam++ or layercam), --signed (the map before the ReLU) or '
            'other --target-layers.',
        )


def _replay_warnings(caught: List[warnings.WarningMessage]) -> None:
    """Give warnings recorded while the model was built.

    mmcam_ext's own (:class:`MMCamWarning`: a partial checkpoint, an override
    that adds a key) as one line on stderr, in flags; others as Python
    shows them.

    Args:
        caught (list[warnings.WarningMessage]): The recorded warnings.
    """
    for caught_warning in caught:
        if issubclass(caught_warning.category, MMCamWarning):
            message = caught_warning.message
            if not isinstance(message, Warning):
                message = MMCamWarning(message)
            report(PROG, 'warning', cli_message(message))
        else:
            warnings.showwarning(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )


def _explain_all(args, inferencer, images, prefixes, methods, targets):
    """Explain and write every image; return written and skipped inputs.

    ``methods`` are the method configs (names or dicts with options). The
    grids and raw maps go through the shared writer (a background thread);
    its errors end the run with an :class:`OutputError` once it is done.
    """
    bar = (
        ProgressBar(len(images), file=sys.stderr) if len(images) > 1 else None
    )

    def warn(message: str) -> None:
        if bar is not None:  # the bar's line has no newline yet
            print(file=sys.stderr)
        report(PROG, 'warning', message)

    results = inferencer.iter_results(
        images,
        methods,
        targets,
        args.topk,
        args.batch_size,
        args.aug_smooth,
        args.eigen_smooth,
        args.num_workers,
        skip_bad_images=True,
        descriptors=bool(args.save_raw and not args.no_descriptors),
    )
    writer = open_writer(args, images, inferencer.model)
    try:
        written, skipped = _write_all(
            args, inferencer, images, prefixes, results, writer, warn, bar
        )
    except BaseException:
        writer.close()  # what was queued is still written
        raise
    if bar is not None:
        print(file=sys.stderr)
    finish_writer(writer, args)
    return written, skipped


def _write_all(
    args, inferencer, images, prefixes, results, writer, warn, bar
) -> Tuple[Dict[str, str], List[Tuple[str, BaseException]]]:
    """The loop of :func:`_explain_all`: queue each result's files."""
    vis = CAMVisualizer(name='vis_cam')
    written: Dict[str, str] = {}
    skipped: List[Tuple[str, BaseException]] = []
    for i, res in enumerate(results):
        if not written and 'error' not in res and args.save_raw:
            writer.set_meta(dict(target_layers=list(res['target_layers'])))
        if 'error' in res:
            skipped.append((images[i], res['error']))
            if len(images) > 1:
                warn(f'skipped: {cli_message(res["error"])}')
        else:
            png = args.save_path or f'{prefixes[i]}_cam.png'
            _write(
                vis, res, prefixes[i], png, inferencer.classes, args, writer, i
            )
            written[images[i]] = png
            _warn_blank(images[i], res, inferencer.classes, warn)
        if bar is not None:
            bar.update()
    return written, skipped


def _finish(args, written: Dict[str, str], skipped) -> int:
    """Summary line and exit code."""
    if skipped and not written:
        if len(skipped) == 1:
            raise skipped[0][1]
        raise InputError(
            f'None of the {len(skipped)} inputs could be read (see the '
            'warnings above).'
        )
    first = next(iter(written.values()))
    where = first if len(written) == 1 else osp.dirname(first)
    print(f'\nSaved {len(written)} CAM image(s) to {where}')
    if not skipped:
        return EXIT_OK
    report(
        PROG,
        'warning',
        f'{len(written)} image(s) explained, {len(skipped)} skipped '
        '(unreadable or too large, listed above)'
        + (
            '.'
            if args.skip_bad_images
            else f'; exit code {EXIT_SKIPPED} (--skip-bad-images makes it 0).'
        ),
    )
    return EXIT_OK if args.skip_bad_images else EXIT_SKIPPED


def run(args) -> int:
    """Explain every image.

    Args:
        args (argparse.Namespace): The parsed arguments.

    Returns:
        int: The exit code (``EXIT_OK`` or ``EXIT_SKIPPED``).

    Raises:
        MMCamError: A user's mistake; :func:`main` reports it.
    """
    check_args(args)
    if args.vit_like:
        print(
            'Note: --vit-like is no longer needed and is ignored; the '
            'token layout is resolved per backbone.'
        )
    configs = method_configs(
        args.method, parse_method_options(args.method_options)
    )
    methods = [m.name for m in check_methods(configs)]
    view = view_options(args)
    caught: List[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', MMCamWarning)
            inferencer = CAMInferencer(
                load_config(args.config, args.cfg_options),
                args.checkpoint,
                args.device,
                args.target_layers or None,
                args.num_extra_tokens,
                strict=not args.allow_partial_checkpoint,
                limits=InputLimits(
                    args.max_image_pixels, args.max_input_pixels
                ),
                view=view,
            )
    finally:  # also before an error the overrides may explain
        _replay_warnings(caught)
    if args.preview_model:
        print(inferencer.model)
        print('\nLayer names (for --target-layers):')
        print('\n'.join(n for n, _ in inferencer.model.named_modules() if n))
        return EXIT_OK
    # args.img holds command-line strings, which list_images expands into
    # path strings only (arrays come only from an array input).
    images = cast(List[str], list_images(args.img))
    prefixes = plan_outputs(args, images, methods)
    categories = class_indices(args.target_category, inferencer.classes)
    targets = _targets(categories, len(images))
    written, skipped = _explain_all(
        args, inferencer, images, prefixes, configs, targets
    )
    return _finish(args, written, skipped)


def _targets(categories: List[int], num_images: int):
    """``--target-category`` as the inferencer's ``targets``."""
    if not categories:
        return None
    if len(categories) == 1:
        return categories[0]
    return np.tile(np.asarray(categories)[None], (num_images, 1))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.
            Defaults to None.

    Returns:
        int: 0 (done), 2 (a user's mistake, one line on stderr) or 3 (done,
        but some inputs were skipped; 0 with ``--skip-bad-images``).
    """
    quiet_known_warnings()
    args = parse_args(argv)
    try:
        return run(args)
    except MMCamError as err:
        report(PROG, 'error', cli_message(err))
        return EXIT_USAGE
    except KeyboardInterrupt:
        report(PROG, 'error', 'interrupted.')
        return 130


if __name__ == '__main__':
    sys.exit(main())
