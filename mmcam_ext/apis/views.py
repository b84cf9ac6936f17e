"""What the model sees of a photo, and the way back to the photo's pixels.

The config's test pipeline usually resizes the short edge and crops the
centre: objects near the border never reach the model, and maps are drawn on
the crop. This module

* rewrites a test pipeline so the whole photo is fed, aspect ratio kept
  (:func:`whole_image_pipeline`), or at another scale
  (:func:`scale_pipeline`);
* runs a pipeline step by step and records, from each geometric step's own
  rule, how input pixels map back to the photo (:class:`InputFrame`,
  :class:`FramedPipeline`);
* puts maps back on the photo's grid (:func:`to_original`) and fuses the maps
  of several scales (:func:`fuse_scales`).
"""

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError, ModelError
from ..utils.maps import normalize_maps

__all__ = [
    'ViewOptions',
    'InputFrame',
    'FramedPipeline',
    'ViewsPipeline',
    'GEOMETRY',
    'FIXED_INPUT_FAMILIES',
    'CROP_STEPS',
    'RESIZE_STEPS',
    'whole_image_pipeline',
    'scale_pipeline',
    'check_any_input_size',
    'to_original',
    'fuse_scales',
    'TILE_ALIGN',
    'tile_spans',
    'input_tiles',
    'blend_tiles',
]

#: Crop steps of MMPretrain test pipelines (dropped in whole-image mode).
CROP_STEPS = ('CenterCrop', 'EfficientNetCenterCrop')
#: Resize steps of MMPretrain test pipelines (replaced in whole-image mode).
RESIZE_STEPS = ('ResizeEdge', 'Resize')
#: Backbones (MMPretrain 1.2.0) that refuse any input size but their
#: own: a forward at 224x320 fails (checked on random-init configs).
FIXED_INPUT_FAMILIES: Dict[str, str] = {
    'LeViT': 'its attention biases are learned for one token grid',
    'EfficientFormer': 'its attention biases are learned for one token grid',
    'HiViT': 'its relative position bias is sized for one patch grid',
    'BEiTViT': 'its relative position bias is sized for one patch grid',
    'MlpMixer': 'its token-mixing MLPs are sized for one token count',
    'RepMLPNet': 'its global perceptron is sized for one input size',
    'TNT': 'it asserts the input size of its config',
}
FUSIONS = ('mean', 'max')
#: Tile corners lie on multiples of this many input pixels: the output
#: stride of most classification backbones (32 for ResNet, EfficientNet,
#: ConvNeXt, Swin; 16 for ViT-B/16 divides it), so a tile's feature grid is
#: a sub-grid of the whole input's.
TILE_ALIGN = 32
Span = Tuple[int, int]
Tile = Tuple[Span, Span]  # (y0, y1), (x0, x1) in input pixels
DRAW_TARGETS = ('input', 'original')


@dataclass(frozen=True)
class ViewOptions:
    """How photos are fed to the model and where the maps are drawn.

    Args:
        whole_image (bool): Replace the test pipeline's crop by a resize
            that keeps the aspect ratio (short edge at ``input_size``).
            Defaults to False.
        input_size (int, optional): Short edge in whole-image mode.
            Defaults to None (the config's crop size).
        scales (Sequence[float]): Explain the photo at each of these
            scales (every size of the pipeline multiplied) and fuse the
            maps on the photo's grid. Defaults to ``(1.0,)``.
        scale_fusion (str): ``'mean'`` or ``'max'`` over scales. Defaults
            to ``'mean'``.
        draw_on (str, optional): ``'input'`` (the maps align with the
            model input) or ``'original'`` (the photo at its own
            resolution). Defaults to None: ``'original'`` in whole-image
            or multi-scale mode, else ``'input'``.
        tile_size (int, optional): Explain a scale whose input has an edge
            above this in overlapping tiles of at most ``tile_size`` square
            (see :func:`input_tiles`, :func:`blend_tiles`), so memory
            stays bounded by the tile, not the scale. Not for the first
            scale (it gives the predictions). Defaults to None (no tiles).
        tile_overlap (int, optional): Input pixels shared by neighbouring
            tiles. Defaults to None (``tile_size // 4``).
    """

    whole_image: bool = False
    input_size: Optional[int] = None
    scales: Tuple[float, ...] = (1.0,)
    scale_fusion: str = 'mean'
    draw_on: Optional[str] = None
    tile_size: Optional[int] = None
    tile_overlap: Optional[int] = None

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        object.__setattr__(self, 'scales', scales)
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise InputError(
                f'scales must be positive numbers, got {list(self.scales)}.',
                option='scales',
            )
        if self.scale_fusion not in FUSIONS:
            raise InputError(
                f'scale_fusion must be one of {FUSIONS}, got '
                f'{self.scale_fusion!r}.',
                option='scale_fusion',
            )
        self._check_draw_target()
        if self.input_size is not None and (
            not isinstance(self.input_size, int) or self.input_size < 8
        ):
            raise InputError(
                f'input_size must be an int >= 8, got {self.input_size!r}.',
                option='input_size',
            )
        self._check_tiles()

    def _check_tiles(self) -> None:
        if self.tile_size is None:
            if self.tile_overlap is not None:
                raise InputError(
                    'tile_overlap applies with tile_size only.',
                    option='tile_overlap',
                )
            return
        if not isinstance(self.tile_size, int) or self.tile_size < 2 * (
            TILE_ALIGN
        ):
            raise InputError(
                f'tile_size must be an int >= {2 * TILE_ALIGN}, got '
                f'{self.tile_size!r}.',
                option='tile_size',
            )
        overlap = self.overlap
        if not isinstance(overlap, int) or not (
            0 <= overlap <= self.tile_size - TILE_ALIGN
        ):
            raise InputError(
                f'tile_overlap must be an int from 0 to tile_size - '
                f'{TILE_ALIGN} = {self.tile_size - TILE_ALIGN} (tiles '
                f'advance by at least {TILE_ALIGN} px), got {overlap!r}.',
                option='tile_overlap',
            )

    @property
    def overlap(self) -> int:
        """Input pixels shared by neighbouring tiles."""
        if self.tile_overlap is not None:
            return self.tile_overlap
        return (self.tile_size or 0) // 4

    def _check_draw_target(self) -> None:
        if self.draw_on is not None and self.draw_on not in DRAW_TARGETS:
            raise InputError(
                f'draw_on must be one of {DRAW_TARGETS}, got '
                f'{self.draw_on!r}.',
                option='draw_on',
            )
        if self.draw_on == 'input' and len(self.scales) > 1:
            raise InputError(
                "Maps of several scales are fused on the photo's grid: "
                "draw_on='input' does not apply; leave it unset or use "
                "'original'.",
                option='draw_on',
            )

    @property
    def on_original(self) -> bool:
        """Whether maps are returned on the photo's grid."""
        if self.draw_on is not None:
            return self.draw_on == 'original'
        return self.whole_image or self.multi_scale

    @property
    def multi_scale(self) -> bool:
        """More than one scale, or one that is not 1."""
        return self.scales != (1.0,)

    @property
    def plain(self) -> bool:
        """The config's pipeline as it is, maps on the model input."""
        return not (self.whole_image or self.multi_scale or self.on_original)


# ------------------------------------------------------------ pipelines
def _size_of(value: Any) -> int:
    """An int or ``(w, h)`` size as one edge (the shorter)."""
    if isinstance(value, (list, tuple)):
        return int(min(value))
    return int(value)


def _native_size(pipeline: Sequence[dict]) -> int:
    """The edge the config feeds: its crop size, else its resize scale."""
    for step in pipeline:
        if step.get('type') in CROP_STEPS:
            return _size_of(step['crop_size'])
    for step in pipeline:
        if step.get('type') in RESIZE_STEPS:
            return _size_of(step['scale'])
    raise ConfigError(
        'The test pipeline has no crop or resize step '
        f'({", ".join(CROP_STEPS + RESIZE_STEPS)}), so the input size for '
        'the whole image is unknown; give input_size.'
    )


def whole_image_pipeline(
    pipeline: Sequence[dict], input_size: Optional[int] = None
) -> List[dict]:
    """The test pipeline with its crop replaced by an aspect-keeping resize.

    Every resize and crop step is dropped; one ``ResizeEdge`` (short edge at
    ``input_size``, backend and interpolation of the config's first resize
    step) takes the place of the first of them. Other steps are kept.

    Args:
        pipeline (Sequence[dict]): The config's test pipeline.
        input_size (int, optional): Short edge of the model input. Defaults
            to None (the config's crop size, else its resize scale).

    Returns:
        list[dict]: The new pipeline (the input is not modified).

    Raises:
        ConfigError: No crop or resize step and no ``input_size``.
    """
    size = input_size or _native_size(pipeline)
    geometric = CROP_STEPS + RESIZE_STEPS
    resize = dict(type='ResizeEdge', scale=int(size), edge='short')
    for step in pipeline:
        if step.get('type') in geometric:
            for key in ('backend', 'interpolation'):
                if key in step:
                    resize[key] = step[key]
            break
    out: List[dict] = []
    for step in pipeline:
        if step.get('type') not in geometric:
            out.append(copy.deepcopy(dict(step)))
        elif resize not in out:
            out.append(resize)
    if resize not in out:  # no geometric step: resize before packing
        out.insert(_pack_index(out), resize)
    return out


def _pack_index(pipeline: List[dict]) -> int:
    names = [step.get('type') for step in pipeline]
    return names.index('PackInputs') if 'PackInputs' in names else len(names)


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(max(1, round(v * factor)) for v in value)
    return max(1, round(value * factor))


def scale_pipeline(pipeline: Sequence[dict], factor: float) -> List[dict]:
    """The pipeline with every resize and crop size multiplied by ``factor``.

    The model then sees the same part of the photo at ``factor`` times the
    resolution.

    Args:
        pipeline (Sequence[dict]): A test pipeline.
        factor (float): The scale.

    Returns:
        list[dict]: The new pipeline (the input is not modified).
    """
    keys = dict(
        ResizeEdge=('scale',),
        Resize=('scale',),
        CenterCrop=('crop_size',),
        EfficientNetCenterCrop=('crop_size', 'crop_padding'),
    )
    out = [copy.deepcopy(dict(step)) for step in pipeline]
    if factor == 1:
        return out
    for step in out:
        for key in keys.get(step.get('type', ''), ()):
            if key in step:
                step[key] = _scaled(step[key], factor)
    return out


def check_any_input_size(model: nn.Module) -> None:
    """Refuse a backbone that runs at one input size only.

    Args:
        model (nn.Module): The classifier.

    Raises:
        ModelError: Naming the family, why, and what to do.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        return
    for cls in type(backbone).__mro__:
        why = FIXED_INPUT_FAMILIES.get(cls.__name__)
        if why:
            raise ModelError(
                f"{type(backbone).__name__} runs at its config's input size "
                f'only ({why}), so the whole image (or another scale) cannot '
                "be fed. Use the config's pipeline: drop whole_image and "
                'scales.',
                option='scales',
            )


# ------------------------------------------------------------ frames
@dataclass(frozen=True)
class InputFrame:
    """Where the model input lies in the photo.

    An input pixel edge ``u`` (x or y, ``0..input size``) is the photo's
    edge ``u / scale + offset``.

    Args:
        ori_shape (tuple[int, int]): The photo's ``(H, W)``.
        input_shape (tuple[int, int]): The model input's ``(h, w)``.
        scale (tuple[float, float]): Input pixels per photo pixel,
            ``(y, x)``. Defaults to ``(1.0, 1.0)``.
        offset (tuple[float, float]): The input's top-left corner in the
            photo, ``(y, x)``. Defaults to ``(0.0, 0.0)``.
    """

    ori_shape: Tuple[int, int]
    input_shape: Tuple[int, int]
    scale: Tuple[float, float] = (1.0, 1.0)
    offset: Tuple[float, float] = (0.0, 0.0)

    def then(self, scale: Tuple[float, float], offset=(0.0, 0.0), shape=None):
        """This frame followed by a step: ``new = (old - offset) * scale``.

        Args:
            scale (tuple[float, float]): The step's ``(y, x)`` scale.
            offset (tuple[float, float]): The step's crop corner ``(y, x)``
                in the previous input's pixels. Defaults to ``(0, 0)``.
            shape (tuple[int, int], optional): The step's output ``(h, w)``.
                Defaults to None (unchanged).

        Returns:
            InputFrame: The composed frame.
        """
        return InputFrame(
            self.ori_shape,
            tuple(shape or self.input_shape),
            (self.scale[0] * scale[0], self.scale[1] * scale[1]),
            (
                self.offset[0] + offset[0] / self.scale[0],
                self.offset[1] + offset[1] / self.scale[1],
            ),
        )

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """The part of the photo the model saw, ``(x0, y0, x1, y1)`` in
        photo pixels (clipped to the photo, rounded outwards)."""
        (h, w), (sy, sx), (oy, ox) = (
            self.input_shape,
            self.scale,
            self.offset,
        )
        height, width = self.ori_shape
        return (
            max(0, math.floor(ox + 1e-6)),
            max(0, math.floor(oy + 1e-6)),
            min(width, math.ceil(ox + w / sx - 1e-6)),
            min(height, math.ceil(oy + h / sy - 1e-6)),
        )

    @property
    def whole(self) -> bool:
        """Whether the model saw the whole photo."""
        return self.box == (0, 0, self.ori_shape[1], self.ori_shape[0])


def _hw(data: dict) -> Tuple[int, int]:
    """``(H, W)`` of the image in a pipeline dict (before or after
    ``PackInputs``)."""
    img = data.get('img')
    if img is None:
        img = data['inputs']
        return int(img.shape[-2]), int(img.shape[-1])
    return int(img.shape[0]), int(img.shape[1])


def _resize_step(step, before, after, old, new) -> Tuple[tuple, tuple]:
    """A resize maps edges ``0..old`` onto ``0..new`` (mmcv.imresize)."""
    return (new[0] / old[0], new[1] / old[1]), (0.0, 0.0)


def _center_crop_step(step, before, after, old, new) -> Tuple[tuple, tuple]:
    """mmcv's ``CenterCrop`` corner rule, checked against the pixels."""
    y = max(0, int(round((old[0] - new[0]) / 2.0)))
    x = max(0, int(round((old[1] - new[1]) / 2.0)))
    if new[0] <= old[0] and new[1] <= old[1]:
        if not np.array_equal(before[y : y + new[0], x : x + new[1]], after):
            raise ConfigError(
                f'{type(step).__name__} did not crop at ({x}, {y}) as '
                'mmcv.CenterCrop does; the input cannot be mapped back to '
                "the photo: use draw_on='input'."
            )
    return (1.0, 1.0), (float(y), float(x))


def _efficientnet_crop_step(
    step, before, after, old, new
) -> Tuple[tuple, tuple]:
    """MMPretrain's ``EfficientNetCenterCrop``: a centred square of
    ``crop_size / (crop_size + crop_padding)`` of the short edge (int
    corners, as ``mmcv.imcrop``), resized to ``crop_size``."""
    side = step.crop_size / (step.crop_size + step.crop_padding) * min(old)
    y = max(0, int(round((old[0] - side) / 2.0)))
    x = max(0, int(round((old[1] - side) / 2.0)))
    y2 = min(old[0] - 1, int(y + side - 1))
    x2 = min(old[1] - 1, int(x + side - 1))
    height, width = y2 - y + 1, x2 - x + 1
    return (new[0] / height, new[1] / width), (float(y), float(x))


#: Geometric test-pipeline steps: class name -> ``(scale, offset)`` rule.
GEOMETRY: Dict[str, Callable[..., Tuple[tuple, tuple]]] = {
    'ResizeEdge': _resize_step,
    'Resize': _resize_step,
    'CenterCrop': _center_crop_step,
    'EfficientNetCenterCrop': _efficientnet_crop_step,
}


class FramedPipeline:
    """A test pipeline that also says where its output lies in the photo.

    Runs the transforms one by one; each step that changes the image's size
    is mapped by the rule of its class (:data:`GEOMETRY`); a step of
    another class that changes the size is refused, never guessed.

    Args:
        transforms (Sequence[callable]): The built transforms.
    """

    def __init__(self, transforms: Sequence[Callable[[dict], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, data: dict) -> dict:
        """Run the pipeline on ``data``.

        Args:
            data (dict): ``img`` (BGR ``HxWx3``), ``img_shape``,
                ``ori_shape``.

        Returns:
            dict: The pipeline's output plus ``frame`` (an
            :class:`InputFrame`).
        """
        frame = InputFrame(_hw(data), _hw(data))
        for step in self.transforms:
            before, old = data.get('img'), _hw(data)
            data = step(data)
            new = _hw(data)
            if new != old:
                scale, offset = self._rule(step, before, data, old, new)
                frame = frame.then(scale, offset, new)
        data['frame'] = frame
        return data

    @staticmethod
    def _rule(step, before, data, old, new) -> Tuple[tuple, tuple]:
        for cls in type(step).__mro__:
            if cls.__name__ in GEOMETRY:
                return GEOMETRY[cls.__name__](
                    step, before, data.get('img'), old, new
                )
        raise ConfigError(
            f'The test pipeline step {type(step).__name__} changes the image '
            f'size ({old[1]}x{old[0]} -> {new[1]}x{new[0]}) in a way '
            'mmcam_ext cannot map back to the photo (known: '
            f"{', '.join(GEOMETRY)}); use draw_on='input'."
        )


# ------------------------------------------------------------ maps
def to_original(maps: torch.Tensor, frame: InputFrame) -> torch.Tensor:
    """Maps on the model input, put on the photo's pixel grid.

    Bilinear, sampled at each photo pixel's centre (as ``F.interpolate``
    with ``align_corners=False`` does for a plain resize); photo pixels the
    model did not see (outside :attr:`InputFrame.box`) are 0.

    Args:
        maps (torch.Tensor): ``(..., h, w)`` maps on the model input.
        frame (InputFrame): Where the input lies in the photo.

    Returns:
        torch.Tensor: ``(..., H, W)`` maps on the photo.
    """
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    height, width = frame.ori_shape
    gy, gx = (
        (torch.arange(n, dtype=torch.float64) + 0.5 - offset) * scale
        for n, scale, offset in zip((height, width), frame.scale, frame.offset)
    )  # photo pixel centres in input edge coordinates
    inside = ((gy >= 0) & (gy <= h))[:, None] & ((gx >= 0) & (gx <= w))
    grid = torch.stack(
        torch.broadcast_tensors(
            (2 * gx / w - 1)[None, :], (2 * gy / h - 1)[:, None]
        ),
        -1,
    )
    flat = maps.reshape(-1, 1, h, w).float()
    out = F.grid_sample(
        flat,
        grid.to(flat).expand(flat.shape[0], -1, -1, -1),
        mode='bilinear',
        padding_mode='border',
        align_corners=False,
    )
    out = out * inside.to(out)
    return out.reshape(*lead, height, width)


def fuse_scales(
    maps: Sequence[torch.Tensor], fusion: str = 'mean', normalize=True
) -> torch.Tensor:
    """Fuse maps of several scales that lie on one grid.

    Args:
        maps (Sequence[torch.Tensor]): One ``(..., H, W)`` map per scale.
        fusion (str): ``'mean'`` or ``'max'``. Defaults to ``'mean'``.
        normalize (bool): Min-max normalise the result per map (the
            ``[0, 1]`` maps); False for signed maps. Defaults to True.

    Returns:
        torch.Tensor: ``(..., H, W)``.
    """
    stacked = torch.stack(list(maps), 0)
    fused = stacked.mean(0) if fusion == 'mean' else stacked.amax(0)
    return normalize_maps(fused) if normalize else fused


# ------------------------------------------------------------ tiles
def tile_spans(
    length: int, tile: int, overlap: int, align: int = TILE_ALIGN
) -> List[Span]:
    """Overlapping spans ``[start, end)`` that cover ``0..length``.

    Starts lie on multiples of ``align``; each tile is ``tile`` long but
    the last, which ends at ``length`` (and is longer than
    ``tile - align``); neighbours share at least ``overlap`` pixels.

    Args:
        length (int): The input's edge.
        tile (int): Longest span.
        overlap (int): Least shared length of neighbours
            (``<= tile - align``).
        align (int): Start multiple. Defaults to :data:`TILE_ALIGN`.

    Returns:
        list[tuple[int, int]]: One span when ``length <= tile``.
    """
    if length <= tile:
        return [(0, length)]
    last = -(-(length - tile) // align) * align  # the tile ending at length
    starts = [0]
    while starts[-1] < last:
        step = (starts[-1] + tile - overlap) // align * align
        starts.append(min(last, max(step, starts[-1] + align)))
    return [(start, min(start + tile, length)) for start in starts]


def input_tiles(
    shape: Sequence[int], tile: int, overlap: int
) -> Optional[List[Tile]]:
    """The tiles of an input of ``(..., H, W)``, or None if it fits one.

    Args:
        shape (Sequence[int]): The input's shape.
        tile (int): Longest tile edge.
        overlap (int): Least overlap of neighbours.

    Returns:
        list, optional: ``((y0, y1), (x0, x1))`` per tile, row by row.
    """
    height, width = int(shape[-2]), int(shape[-1])
    if max(height, width) <= tile:
        return None
    rows = tile_spans(height, tile, overlap)
    cols = tile_spans(width, tile, overlap)
    return [(r, c) for r in rows for c in cols]


def _tile_weight(span: Span, length: int, overlap: int) -> torch.Tensor:
    """A tile's blending weight along one axis: 0 within ``overlap / 4``
    of an edge it shares with a neighbour, rising linearly to 1 at
    ``overlap / 2`` (edges of the input itself are not shared)."""
    start, end = span
    pos = torch.arange(end - start, dtype=torch.float64) + 0.5
    inf = torch.full_like(pos, math.inf)
    dist = torch.minimum(
        pos if start > 0 else inf, (end - start) - pos if end < length else inf
    )
    if overlap < 2:
        return torch.ones_like(pos)
    quarter = overlap / 4
    return ((dist - quarter) / quarter).clamp(0, 1)


def blend_tiles(
    maps: Sequence[torch.Tensor],
    tiles: Sequence[Tile],
    shape: Tuple[int, int],
    overlap: int,
) -> torch.Tensor:
    """Maps of tiles as one map of the whole input.

    Each pixel is the weighted mean of the tiles that hold it; a tile's
    weight is 0 within ``overlap / 4`` of an edge it shares with a
    neighbour and 1 beyond ``overlap / 2`` (every pixel has a tile of
    weight 1). So where every tile's map equals the whole input's map
    farther than ``overlap / 4`` from its shared edges (a model whose
    receptive field reaches less far, tiles on its stride), the blend
    equals the whole input's map.

    Args:
        maps (Sequence[torch.Tensor]): ``(..., h_t, w_t)`` per tile.
        tiles (Sequence): From :func:`input_tiles`.
        shape (tuple[int, int]): The input's ``(H, W)``.
        overlap (int): The tiles' overlap.

    Returns:
        torch.Tensor: ``(..., H, W)``.
    """
    height, width = shape
    lead = maps[0].shape[:-2]
    total = torch.zeros(*lead, height, width, dtype=torch.float64)
    weight = torch.zeros(height, width, dtype=torch.float64)
    for tile_map, ((y0, y1), (x0, x1)) in zip(maps, tiles):
        w = torch.outer(
            _tile_weight((y0, y1), height, overlap),
            _tile_weight((x0, x1), width, overlap),
        )
        total[..., y0:y1, x0:x1] += tile_map.double() * w
        weight[y0:y1, x0:x1] += w
    return (total / weight).to(maps[0].dtype)


class ViewsPipeline:
    """Several framed pipelines (one per scale) over one decoded photo.

    Args:
        pipelines (Sequence[FramedPipeline]): One per scale.
        tile_size (int, optional): Tile every view but the first whose
            input has an edge above this (:func:`input_tiles`). Defaults
            to None.
        overlap (int): The tiles' overlap. Defaults to 0.
    """

    def __init__(
        self,
        pipelines: Sequence[FramedPipeline],
        tile_size: Optional[int] = None,
        overlap: int = 0,
    ) -> None:
        self.pipelines = list(pipelines)
        self.tile_size = tile_size
        self.overlap = overlap

    def __call__(self, data: dict) -> dict:
        """Run every pipeline on ``data``.

        Args:
            data (dict): ``img`` (BGR ``HxWx3``), ``img_shape``,
                ``ori_shape``.

        Returns:
            dict: The first pipeline's output, plus ``views`` (every
            pipeline's output, each with its ``frame`` and, when tiled,
            its ``tiles``) and ``ori_img`` (the photo, BGR).

        Raises:
            InputError: The first view would need tiles.
        """
        views = [pipeline(dict(data)) for pipeline in self.pipelines]
        if self.tile_size is not None:
            self._tile(views, self.tile_size)
        out = dict(views[0])
        out['views'] = views
        out['ori_img'] = data['img']
        return out

    def _tile(self, views: List[dict], size: int) -> None:
        """Add ``tiles`` to the views above the tile ``size``."""
        shape = tuple(views[0]['inputs'].shape[-2:])
        if input_tiles(shape, size, self.overlap):
            raise InputError(
                f"The first scale's input ({shape[1]}x{shape[0]}) is larger "
                f'than tile_size={size}, but the first scale is '
                'explained whole (it gives the predictions and the '
                'explained classes): raise tile_size or put a smaller scale '
                'first.',
                option='tile_size',
            )
        for view in views[1:]:
            tiles = input_tiles(view['inputs'].shape, size, self.overlap)
            if tiles:
                view['tiles'] = tiles
