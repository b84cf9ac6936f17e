"""Explain a batch of photos through their views (whole image, scales).

One view per scale per photo (:class:`~mmcam_ext.apis.views.ViewsPipeline`).
Photos of different aspect ratios give inputs of different sizes: each
scale's inputs are grouped by size, and each group is explained in chunks
of at most ``max_input_pixels`` (a batch per size, not one image per pass).
The first scale decides the classes when none are given; every other scale
explains the same classes, so the passes are exactly those of the scales'
single runs. Maps are put on the photo's grid and fused there.
"""

from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..utils.image import to_rgb
from ..utils.maps import normalize_maps
from .cam_engine import CAMEngine
from .numerics import blank_flags
from .views import ViewOptions, blend_tiles, fuse_scales, to_original

__all__ = ['explain_views', 'group_by_shape']

Row = Dict[str, Any]


def group_by_shape(
    shapes: Sequence[Tuple[int, ...]], max_pixels: int
) -> List[List[int]]:
    """Positions of equal shapes, in chunks of at most ``max_pixels``.

    Args:
        shapes (Sequence[tuple]): One ``(..., H, W)`` shape per input.
        max_pixels (int): Largest ``H x W x count`` of one chunk (at
            least one input per chunk).

    Returns:
        list[list[int]]: Chunks of positions, in order of first appearance.
    """
    groups: Dict[Tuple[int, ...], List[int]] = defaultdict(list)
    for i, shape in enumerate(shapes):
        groups[tuple(shape)].append(i)
    chunks = []
    for shape, members in groups.items():
        size = max(1, max_pixels // int(np.prod(shape[-2:])))
        chunks += [members[k : k + size] for k in range(0, len(members), size)]
    return chunks


def _work(views: Sequence[dict]) -> List[Tuple[int, Any, torch.Tensor]]:
    """``(view position, tile or None, input)`` per pass input: a view's
    whole input, or each of its ``tiles``."""
    items = []
    for i, view in enumerate(views):
        for tile in view.get('tiles') or [None]:
            x = view['inputs']
            if tile is not None:
                (y0, y1), (x0, x1) = tile
                x = x[..., y0:y1, x0:x1]
            items.append((i, tile, x))
    return items


def _chunks(items, max_pixels: int, tile_pixels: int) -> List[List[int]]:
    """Positions of ``items`` per pass: whole inputs grouped by shape
    within ``max_pixels``; tiles within ``tile_pixels`` too, so a tiled
    scale's memory is bounded by its tile, not by the scale."""
    whole = [j for j, (_, tile, _) in enumerate(items) if tile is None]
    tiled = [j for j, (_, tile, _) in enumerate(items) if tile is not None]
    chunks = []
    for members, limit in (
        (whole, max_pixels),
        (tiled, min(max_pixels, tile_pixels or max_pixels)),
    ):
        shapes = [items[j][2].shape for j in members]
        chunks += [
            [members[k] for k in chunk]
            for chunk in group_by_shape(shapes, limit)
        ]
    return chunks


def _explain_scale(
    engine: CAMEngine,
    preprocessor: nn.Module,
    views: Sequence[dict],
    targets: Optional[torch.Tensor],
    options: dict,
    max_pixels: int,
    overlap: int = 0,
    tile_pixels: int = 0,
) -> List[Row]:
    """One scale of every photo: per photo maps on its input and scores
    (a tiled input's maps blended from its tiles')."""
    items = _work(views)
    results: List[Row] = [{} for _ in items]
    for chunk in _chunks(items, max_pixels, tile_pixels):
        owners = [items[j][0] for j in chunk]
        data = preprocessor(
            dict(
                inputs=[items[j][2] for j in chunk],
                data_samples=[views[i]['data_samples'] for i in owners],
            ),
            False,
        )
        tgt = None if targets is None else targets[owners]
        res = engine.explain(data['inputs'], targets=tgt, **options)
        for k, j in enumerate(chunk):
            results[j] = dict(
                maps={m: v[k] for m, v in res.maps.items()},
                raw_maps={m: v[k] for m, v in res.raw_maps.items()},
                targets=res.targets[k],
                target_scores=res.target_scores[k],
                pred_label=int(res.pred_labels[k]),
                pred_score=float(res.pred_scores[k]),
                target_layers=list(res.target_layers),
            )
    rows = []
    for i, view in enumerate(views):
        parts = [(t, r) for (o, t, _), r in zip(items, results) if o == i]
        rows.append(
            parts[0][1]
            if parts[0][0] is None
            else _blended(parts, tuple(view['inputs'].shape[-2:]), overlap)
        )
    return rows


def _blended(parts: List[Tuple[Any, Row]], shape, overlap: int) -> Row:
    """A tiled input's row: its tiles' signed maps blended
    (:func:`blend_tiles`), then ReLU and min-max as one map.

    A tile's class score pools over the tile only, so a gradient at a
    pooled layer is ``input pixels / tile pixels`` times the whole
    input's: each tile's signed map is scaled by its share of the input's
    pixels first, which puts such maps on the whole input's scale.
    """
    tiles = [t for t, _ in parts]
    pixels = shape[0] * shape[1]
    shares = [(y1 - y0) * (x1 - x0) / pixels for (y0, y1), (x0, x1) in tiles]
    maps, raw = {}, {}
    for method in parts[0][1]['raw_maps']:
        blended = blend_tiles(
            [
                torch.from_numpy(np.asarray(r['raw_maps'][method])) * share
                for (_, r), share in zip(parts, shares)
            ],
            tiles,
            shape,
            overlap,
        )
        raw[method] = blended.numpy()
        maps[method] = normalize_maps(blended.clamp(min=0)).numpy()
    return dict(parts[0][1], maps=maps, raw_maps=raw)


def _fused(
    per_scale: Sequence[np.ndarray],
    frames: Sequence[Any],
    view: ViewOptions,
    signed: bool,
) -> np.ndarray:
    """One method's ``(K, h, w)`` maps of every scale as one map set."""
    if not view.on_original:  # one scale, drawn on the model input
        return per_scale[0]
    placed = [
        to_original(torch.from_numpy(np.asarray(m)), f)
        for m, f in zip(per_scale, frames)
    ]
    if len(placed) == 1:
        return placed[0].numpy()
    return fuse_scales(placed, view.scale_fusion, not signed).numpy()


def _photo_row(batch: dict, i: int, scales: List[List[Row]], view) -> Row:
    """The result of photo ``i`` from its rows at every scale."""
    first = scales[0][i]
    views = batch['views'][i]
    frames = [v['frame'] for v in views]
    maps, raw = {}, {}
    for method in first['maps']:
        maps[method] = _fused(
            [s[i]['maps'][method] for s in scales], frames, view, False
        )
        raw[method] = _fused(
            [s[i]['raw_maps'][method] for s in scales], frames, view, True
        )
    if view.on_original:
        image = to_rgb(batch['ori_img'][i], 'bgr')
        box = None if frames[0].whole else frames[0].box
    else:
        image = to_rgb(views[0]['inputs'].cpu().numpy(), 'bgr')
        box = None
    flags = blank_flags(
        {m: torch.from_numpy(v)[None] for m, v in maps.items()}
    )
    return dict(
        first,
        img_path=batch['img_path'][i],
        image=image,
        maps=maps,
        raw_maps=raw,
        blank={m: v[0] for m, v in flags.items()},
        view_box=box,
        frames=frames,
    )


def explain_views(
    engine: CAMEngine,
    preprocessor: nn.Module,
    batch: dict,
    targets: Optional[torch.Tensor],
    options: dict,
    view: ViewOptions,
    max_pixels: int,
) -> List[Row]:
    """Explain a collated batch of :class:`ViewsPipeline` outputs.

    Args:
        engine (CAMEngine): The engine.
        preprocessor (nn.Module): The model's data preprocessor.
        batch (dict): ``pseudo_collate`` of the dataset items (``views``,
            ``ori_img``, ``index``, ``img_path``).
        targets (torch.Tensor, optional): ``(N, K)`` classes of all images
            of the run, or None (the first scale's top-k).
        options (dict): ``methods``, ``topk``, ``aug_smooth``,
            ``eigen_smooth`` for :meth:`CAMEngine.explain`.
        view (ViewOptions): The views.
        max_pixels (int): Largest model input of one pass, in pixels.

    Returns:
        list[dict]: One result per photo, in batch order (the keys of
        ``CAMInferencer.iter_results``, without class names).
    """
    index = list(batch['index'])
    tgt = None if targets is None else targets[index]
    scales: List[List[Row]] = []
    for s in range(len(view.scales)):
        views = [v[s] for v in batch['views']]
        rows = _explain_scale(
            engine,
            preprocessor,
            views,
            tgt,
            options,
            max_pixels,
            view.overlap,
            (view.tile_size or 0) ** 2,
        )
        if tgt is None:  # later scales explain the first scale's classes
            tgt = torch.as_tensor(np.stack([r['targets'] for r in rows]))
        scales.append(rows)
    return [_photo_row(batch, i, scales, view) for i in range(len(index))]
