"""Pointing game on real photos: config crop vs whole image vs scales.

Photos shipped by installed packages (scikit-image, matplotlib), several
objects each (some small, some near the border), boxed by hand once in
``benchmarks/data/real_photo_boxes.json`` with the ImageNet class the demo
model (EfficientNet-Lite0, real weights) predicts on the box crop. Every
object is explained for its class; a hit is the map's peak, on the photo's
grid, inside one of the object's boxes; each miss is printed with what
bounds it (the class's rank, where the map peaks). Also times
``scales=(1, 2)`` against the two single-scale runs (alternating rounds,
passes and input pixels counted) and measures the peak memory of a large
scale untiled and tiled (fresh processes, Linux ``/proc``).
"""

import json
import os.path as osp
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmcam_ext.apis import CAMInferencer
from mmcam_ext.apis.views import ViewOptions
from mmcam_ext.evaluation.localization import pointing_game

from .memory import reset_peak, status_kib

__all__ = [
    'BOXES_FILE',
    'METHODS',
    'SETTINGS',
    'PhotoObject',
    'TOLERANCE',
    'MissReason',
    'load_objects',
    'miss_reasons',
    'pointing_table',
    'scale_cost',
    'tile_memory',
    'markdown_table',
]

BOXES_FILE = osp.join(osp.dirname(__file__), 'data', 'real_photo_boxes.json')
METHODS = ('GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM')
#: Column -> how the photos are fed (maps always on the photo's grid).
SETTINGS: Dict[str, ViewOptions] = {
    'config pipeline': ViewOptions(draw_on='original'),
    'whole image': ViewOptions(whole_image=True),
    'whole image, scales 1 2': ViewOptions(whole_image=True, scales=(1, 2)),
}
Box = Tuple[int, int, int, int]
#: The pointing game's tolerance (Zhang et al., 2016), in photo pixels;
#: the table gives strict hits and hits within it.
TOLERANCE = 15
SHORT = dict(
    GradCAM='GC', GradCAMPlusPlus='GC++', XGradCAM='XGC', LayerCAM='LC'
)


@dataclass(frozen=True)
class PhotoObject:
    """One boxed object of one photo.

    Args:
        photo (str): The photo's name.
        path (str): The photo file.
        name (str): What the object is.
        label (int): Its ImageNet-1k class.
        boxes (tuple): ``(x0, y0, x1, y1)`` boxes (instances of the class).
        area (float): Share of the photo its boxes cover.
    """

    photo: str
    path: str
    name: str
    label: int
    boxes: Tuple[Box, ...]
    area: float


def _package_file(package: str, rel: str) -> str:
    module = __import__(package)
    return osp.join(osp.dirname(module.__file__), rel)


def load_objects(path: str = BOXES_FILE) -> List[PhotoObject]:
    """The boxed objects of the photos that are installed.

    Args:
        path (str): The boxes file. Defaults to :data:`BOXES_FILE`.

    Returns:
        list[PhotoObject]: In file order.
    """
    import mmcv

    with open(path) as f:
        photos = json.load(f)['photos']
    objects = []
    for photo, entry in photos.items():
        file = _package_file(*entry['source'])
        height, width = mmcv.imread(file).shape[:2]
        for obj in entry['objects']:
            boxes = tuple(tuple(b) for b in obj['boxes'])
            mask = np.zeros((height, width), bool)
            for x0, y0, x1, y1 in boxes:
                mask[y0:y1, x0:x1] = True
            objects.append(
                PhotoObject(
                    photo,
                    file,
                    obj['name'],
                    int(obj['class']),
                    boxes,  # type: ignore[arg-type]
                    float(mask.mean()),
                )
            )
    return objects


def _hits(
    inferencer: CAMInferencer, objects: Sequence[PhotoObject], methods
) -> Dict[str, List[int]]:
    """Per method, per object: 2 (peak in a box), 1 (within
    :data:`TOLERANCE` of one) or 0 (one pass per photo)."""
    hits: Dict[str, List[int]] = {m: [] for m in methods}
    photos = list(dict.fromkeys(o.path for o in objects))
    for path in photos:
        group = [o for o in objects if o.path == path]
        (res,) = inferencer(path, methods, targets=[[o.label for o in group]])
        for method in methods:
            for k, obj in enumerate(group):
                cam = res['maps'][method][k]
                hits[method].append(
                    max(
                        2 * pointing_game(cam, box)
                        or int(pointing_game(cam, box, TOLERANCE))
                        for box in obj.boxes
                    )
                )
    return hits


def pointing_table(
    config: str,
    checkpoint: str,
    objects: Sequence[PhotoObject],
    methods: Sequence[str] = METHODS,
    device: str = 'cpu',
    target_layers: Optional[Sequence[str]] = None,
) -> Dict[str, Dict[str, List[int]]]:
    """Hit flags per setting (:data:`SETTINGS`), method and object.

    Args:
        config (str): The demo config.
        checkpoint (str): Its converted checkpoint.
        objects (Sequence[PhotoObject]): From :func:`load_objects`.
        methods (Sequence[str]): CAM methods. Defaults to :data:`METHODS`.
        device (str): Where the model runs. Defaults to ``'cpu'``.
        target_layers (Sequence[str], optional): Layers to explain.
            Defaults to None (the resolver's choice).

    Returns:
        dict: ``{setting: {method: [hit per object]}}``, a hit being 2
        (peak in a box), 1 (within :data:`TOLERANCE`) or 0.
    """
    table = {}
    for setting, view in SETTINGS.items():
        inferencer = CAMInferencer(
            config, checkpoint, device, target_layers, view=view
        )
        table[setting] = _hits(inferencer, objects, methods)
    return table


#: Class ranks above this (top-5) say the model hardly sees the class.
SEEN_RANK = 5


@dataclass(frozen=True)
class MissReason:
    """Why one method's map misses one object (beyond :data:`TOLERANCE`).

    Args:
        obj (PhotoObject): The object.
        method (str): The CAM method.
        peak (tuple[int, int]): The map's peak ``(x, y)`` in photo pixels.
        distance (int): Pixels from the peak to the nearest box (the
            larger of the x and y gaps, as the tolerance grows a box).
        ranks (tuple): Per scale, ``(scale, rank of the class among all
            classes, its probability, feature cell edge in photo px)``.
    """

    obj: PhotoObject
    method: str
    peak: Tuple[int, int]
    distance: int
    ranks: Tuple[Tuple[float, int, float, float], ...]

    @property
    def bound(self) -> str:
        """What bounds this miss, in words."""
        scale, rank, prob, _ = min(self.ranks, key=lambda r: r[1])
        cell = min(r[3] for r in self.ranks)
        if rank > SEEN_RANK:
            return (
                f'the model hardly sees the class: rank {rank} of 1000 at '
                f'best (p = {prob:.4f}, scale {scale:g})'
            )
        if self.distance <= cell:
            return (
                f'the peak is {self.distance} px off the box, within one '
                f"feature cell ({cell:.0f} px): the map's resolution"
            )
        return (
            f'the model ranks the class {rank} (p = {prob:.3f}, scale '
            f'{scale:g}) but the map peaks {self.distance} px off the box: '
            'its evidence for the class lies outside the box'
        )

    def line(self) -> str:
        """One Markdown list item."""
        ranks = ', '.join(
            f'rank {r} (p {p:.4f}) at scale {s:g}' for s, r, p, _ in self.ranks
        )
        return (
            f'- {self.obj.name} ({self.obj.photo}, {self.obj.label}), '
            f'{self.method}: peak at {self.peak}, {self.distance} px from '
            f'the box; {ranks}. Bound: {self.bound}.'
        )


def _distance(peak: Tuple[int, int], boxes: Sequence[Box]) -> int:
    x, y = peak
    return min(
        max(x0 - x, 0, x - (x1 - 1), y0 - y, 0, y - (y1 - 1))
        for x0, y0, x1, y1 in boxes
    )


def _class_ranks(inferencer: CAMInferencer, path: str, layer: str):
    """Per view (scale): logits ``(1000,)`` and the feature cell edge of
    ``layer`` in photo pixels."""
    import mmcv
    import torch

    img = mmcv.imread(path)
    data = inferencer.pipeline(
        dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    )
    model = inferencer.model
    grids: List[Tuple[int, int]] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda mod, inp, out: grids.append(tuple(out.shape[-2:]))
    )
    out = []
    try:
        for view in data['views']:
            batch = model.data_preprocessor(
                dict(
                    inputs=[view['inputs']],
                    data_samples=[view['data_samples']],
                ),
                False,
            )
            with torch.no_grad():
                logits = model(batch['inputs'], mode='tensor')[0]
            frame = view['frame']
            cell = frame.input_shape[0] / grids[-1][0] / frame.scale[0]
            out.append((logits, cell))
    finally:
        handle.remove()
    return out


def miss_reasons(
    config: str,
    checkpoint: str,
    objects: Sequence[PhotoObject],
    methods: Sequence[str] = METHODS,
    setting: str = 'whole image, scales 1 2',
    device: str = 'cpu',
    target_layers: Optional[Sequence[str]] = None,
) -> List[MissReason]:
    """Every miss (beyond :data:`TOLERANCE`) of one setting, with the
    class's rank at each scale and where the map peaks.

    Args:
        config (str): The demo config.
        checkpoint (str): Its converted checkpoint.
        objects (Sequence[PhotoObject]): From :func:`load_objects`.
        methods (Sequence[str]): CAM methods. Defaults to :data:`METHODS`.
        setting (str): A key of :data:`SETTINGS`. Defaults to the whole
            image at scales 1 and 2.
        device (str): Where the model runs. Defaults to ``'cpu'``.
        target_layers (Sequence[str], optional): Layers to explain.
            Defaults to None (the resolver's choice).

    Returns:
        list[MissReason]: In object order, then method order.
    """
    import torch

    view = SETTINGS[setting]
    inferencer = CAMInferencer(
        config, checkpoint, device, target_layers, view=view
    )
    reasons = []
    for path in dict.fromkeys(o.path for o in objects):
        group = [o for o in objects if o.path == path]
        (res,) = inferencer(path, methods, targets=[[o.label for o in group]])
        views = _class_ranks(inferencer, path, res['target_layers'][-1])
        for k, obj in enumerate(group):
            ranks = tuple(
                (
                    scale,
                    int((logits > logits[obj.label]).sum()) + 1,
                    float(torch.softmax(logits, -1)[obj.label]),
                    cell,
                )
                for scale, (logits, cell) in zip(view.scales, views)
            )
            for method in methods:
                cam = res['maps'][method][k]
                y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
                dist = _distance((int(x), int(y)), obj.boxes)
                if dist > TOLERANCE or np.ptp(cam) <= 0:
                    reasons.append(
                        MissReason(obj, method, (int(x), int(y)), dist, ranks)
                    )
    return reasons


def _timed(fn: Callable[[], object]) -> Tuple[float, float]:
    """Wall and CPU seconds of this process (all its threads) of ``fn()``:
    CPU time is less disturbed by other jobs on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class _PassCounter:
    """Forward passes of a model and the input pixels they saw: the work
    of a run, which no other job on the machine changes."""

    def __init__(self, model) -> None:
        self.passes = self.pixels = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        if args and hasattr(args[0], 'shape') and args[0].dim() == 4:
            batch, _, height, width = args[0].shape
            self.passes += 1
            self.pixels += int(batch * height * width)

    def take(self) -> Tuple[int, int]:
        out, self.passes, self.pixels = (self.passes, self.pixels), 0, 0
        return out


def scale_cost(
    config: str,
    checkpoint: str,
    objects: Sequence[PhotoObject],
    rounds: int = 5,
    device: str = 'cpu',
) -> Dict[str, List[float]]:
    """Seconds of ``scales=(1, 2)`` and of scales 1 and 2 alone, per round.

    The three runs alternate within each round, in an order rotated from
    round to round (after one untimed round), each explaining every photo
    for its first object's class with Grad-CAM, with the threads torch
    picks by default. Each run's forward passes and input pixels are
    counted too.

    Args:
        config (str): The demo config.
        checkpoint (str): Its converted checkpoint.
        objects (Sequence[PhotoObject]): From :func:`load_objects`.
        rounds (int): Timed rounds. Defaults to 5.
        device (str): Where the model runs. Defaults to ``'cpu'``.

    Returns:
        dict: ``{'scales 1 2', 'scale 1', 'scale 2', 'ratio'}`` -> one
        value per round (ratio = multi-scale / sum of the single runs),
        wall seconds; the same keys with `` (CPU)`` in process CPU
        seconds, and with `` (passes)`` and `` (Mpx)`` the forward passes
        and megapixels of input of each run.
    """
    runs = {
        name: CAMInferencer(
            config, checkpoint, device, view=ViewOptions(True, scales=s)
        )
        for name, s in (
            ('scales 1 2', (1, 2)),
            ('scale 1', (1,)),
            ('scale 2', (2,)),
        )
    }
    counters = {name: _PassCounter(inf.model) for name, inf in runs.items()}
    photos = list(dict.fromkeys(o.path for o in objects))
    targets = [[o.label for o in objects if o.path == p][:1] for p in photos]
    times: Dict[str, List[float]] = {}
    names = list(runs)
    for rnd in range(rounds + 1):
        for name in names[rnd % 3 :] + names[: rnd % 3]:  # rotate the order
            inferencer = runs[name]
            wall, cpu = _timed(
                lambda inf=inferencer: inf(photos, targets=targets)
            )
            passes, pixels = counters[name].take()
            if rnd:
                for key, value in (
                    ('', wall),
                    (' (CPU)', cpu),
                    (' (passes)', passes),
                    (' (Mpx)', pixels / 1e6),
                ):
                    times.setdefault(name + key, []).append(value)
    for suffix in ('', ' (CPU)'):
        times['ratio' + suffix] = [
            m / (a + b)
            for m, a, b in zip(
                times['scales 1 2' + suffix],
                times['scale 1' + suffix],
                times['scale 2' + suffix],
            )
        ]
    return times


def _explain_peak(
    config: str,
    checkpoint: str,
    path: str,
    label: int,
    view: ViewOptions,
    device: str,
) -> Tuple[float, float]:
    """In a fresh process: peak resident memory added by explaining
    ``path`` with ``view`` (MiB over the resident size before, after
    building the model and explaining the photo at scale 1 once), and its
    wall seconds. Linux: the peak (``VmHWM``) is reset first through
    ``/proc/self/clear_refs`` (``ru_maxrss`` would keep the peak of the
    process that forked this one)."""
    warm = CAMInferencer(config, checkpoint, device, view=ViewOptions(True))
    warm(path, targets=[[label]])
    inferencer = CAMInferencer(config, checkpoint, device, view=view)
    base = status_kib('VmRSS')
    reset_peak()  # VmHWM back to the current resident size
    wall, _ = _timed(lambda: inferencer(path, targets=[[label]]))
    return (status_kib('VmHWM') - base) / 1024, wall


def tile_memory(
    config: str,
    checkpoint: str,
    obj: PhotoObject,
    scale: float = 4.0,
    tile_size: int = 448,
    device: str = 'cpu',
) -> Dict[str, Tuple[float, float]]:
    """Peak memory and time of ``scales=(1, scale)`` untiled and tiled.

    Each setting runs in its own fresh process, explaining ``obj``'s photo
    for its class with Grad-CAM; memory is the peak resident size added
    over the same process after building the model and explaining the
    photo at scale 1 (Linux ``/proc``).

    Args:
        config (str): The demo config.
        checkpoint (str): Its converted checkpoint.
        obj (PhotoObject): The photo and class to explain.
        scale (float): The large scale. Defaults to 4.
        tile_size (int): Tile edge of the tiled run. Defaults to 448.
        device (str): Where the model runs. Defaults to ``'cpu'``.

    Returns:
        dict: ``{setting: (peak MiB added, wall seconds)}``.
    """
    import multiprocessing

    settings = {
        f'scales 1 {scale:g}, untiled': ViewOptions(True, scales=(1, scale)),
        f'scales 1 {scale:g}, tile {tile_size}': ViewOptions(
            True, scales=(1, scale), tile_size=tile_size
        ),
    }
    out = {}
    ctx = multiprocessing.get_context('spawn')
    for name, view in settings.items():
        with ctx.Pool(1) as pool:
            out[name] = pool.apply(
                _explain_peak,
                (config, checkpoint, obj.path, obj.label, view, device),
            )
    return out


def _spread(values: Sequence[float]) -> str:
    return (
        f'{statistics.median(values):.3f} '
        f'[{min(values):.3f}, {max(values):.3f}]'
    )


def markdown_table(
    objects: Sequence[PhotoObject],
    table: Dict[str, Dict[str, List[int]]],
    cost: Dict[str, List[float]],
    reasons: Sequence[MissReason] = (),
    memory: Optional[Dict[str, Tuple[float, float]]] = None,
) -> str:
    """The pointing-game table, the per-object hits, why the misses
    are missed and the cost lines.

    Args:
        objects (Sequence[PhotoObject]): The scored objects.
        table (dict): From :func:`pointing_table`.
        cost (dict): From :func:`scale_cost` (may be empty).
        reasons (Sequence[MissReason]): From :func:`miss_reasons`.
            Defaults to none.
        memory (dict, optional): From :func:`tile_memory`. Defaults to
            None.

    Returns:
        str: Markdown.
    """
    settings = list(table)
    methods = list(next(iter(table.values())))
    lines = [
        f'Objects whose map peaks in their box (within {TOLERANCE} px):',
        '',
        '| method | ' + ' | '.join(settings) + ' |',
        '|---' * (len(settings) + 1) + '|',
    ]
    for m in methods:
        cells = [
            f'{sum(h == 2 for h in table[s][m])}/{len(objects)} '
            f'({sum(h > 0 for h in table[s][m])})'
            for s in settings
        ]
        lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        'Hits per object (~: within the tolerance only):',
        '',
        '| object (photo, class, area) | ' + ' | '.join(settings) + ' |',
        '|---' * (len(settings) + 1) + '|',
    ]
    for k, obj in enumerate(objects):
        cells = [
            ' '.join(
                SHORT.get(m, m) + ('' if table[s][m][k] == 2 else '~')
                for m in methods
                if table[s][m][k]
            )
            or '-'
            for s in settings
        ]
        lines.append(
            f'| {obj.name} ({obj.photo}, {obj.label}, {obj.area:.1%}) | '
            + ' | '.join(cells)
            + ' |'
        )
    if reasons:
        lines += ['', 'Misses of the multi-scale column and what bounds them:']
        lines += [''] + [r.line() for r in reasons]
    if cost:
        lines += ['', *_cost_lines(cost)]
    if memory:
        lines += [
            '',
            'Peak memory added by one photo (each in a fresh process):',
            '',
            '| run | peak MiB added | wall s |',
            '|---|---|---|',
        ]
        lines += [
            f'| {name} | {mib:.0f} | {wall:.2f} |'
            for name, (mib, wall) in memory.items()
        ]
    return '\n'.join(lines)


def _cost_lines(cost: Dict[str, List[float]]) -> List[str]:
    """The cost table of :func:`scale_cost`'s figures."""
    lines = [
        'Cost per run over all photos (median [min, max] of '
        f'{len(cost["ratio"])} alternating rounds):',
        '',
        '| run | wall s | process CPU s | forward passes | input Mpx |',
        '|---|---|---|---|---|',
    ]
    for run in ('scales 1 2', 'scale 1', 'scale 2'):
        if run not in cost:
            continue
        work = [
            f'{statistics.median(cost[run + k]):g}' if run + k in cost else '-'
            for k in (' (passes)', ' (Mpx)')
        ]
        lines.append(
            f'| {run} | {_spread(cost[run])} | '
            f'{_spread(cost.get(run + " (CPU)", cost[run]))} | '
            + ' | '.join(work)
            + ' |'
        )
    lines += ['']
    for suffix in ('', ' (CPU)'):
        if 'ratio' + suffix not in cost:
            continue
        best = [
            min(cost[run + suffix])
            for run in ('scales 1 2', 'scale 1', 'scale 2')
        ]
        lines.append(
            f'- ratio{suffix or " (wall)"}, scales 1 2 / (scale 1 + scale '
            f'2): per round {_spread(cost["ratio" + suffix])}; of the '
            f'fastest rounds {best[0] / (best[1] + best[2]):.3f}'
        )
    return lines
