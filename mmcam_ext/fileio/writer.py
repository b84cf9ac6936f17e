"""The one writer of CAM dumps, used by the hook and ``tools/vis_cam.py``.

:class:`CAMWriter` turns one sample's maps (:class:`SampleCAMs`) into index
rows at once, and hands everything slow to a :class:`BackgroundWriter`:
raw maps into the compact :class:`~mmcam_ext.fileio.map_store.MapStore`,
thumbnail tiles (:class:`~mmcam_ext.fileio.thumbs.ThumbSheets`), and,
optionally, per-sample PNGs (the input and one overlay per target and
method). Drawing an overlay is the caller's (``overlay`` callable: this
module sits below the visualizer), so the same pictures come out wherever a
dump is made.

Files of one dump folder with per-sample PNGs off: the index, one map file
per method x target kind (x map size), and one thumbnail sheet per 1024
samples per method x target kind (+ the inputs): O(methods), not
O(samples x methods x targets).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from .background import BackgroundWriter
from .cam_dump import write_png
from .map_store import MapStore
from .thumbs import TILE_SIZE, ThumbSheets

__all__ = ['CAMWriter', 'SampleCAMs', 'WriterOptions', 'center_energy']

Overlay = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: Side of the central box of :func:`center_energy`, as a share of each
#: image side (0.5: the middle half of the height and of the width).
CENTER = 0.5


def center_energy(cam: np.ndarray, share: float = CENTER) -> float:
    """Share of a map's mass inside the central box.

    The central box spans the middle ``share`` of the height and of the
    width (a quarter of the area for 0.5). A uniform map scores
    ``share ** 2``; a map on a centred object more, a map on the border,
    the background or the context less.

    Args:
        cam (np.ndarray): ``(H, W)`` non-negative map.
        share (float): Side share of the box. Defaults to 0.5.

    Returns:
        float: In ``[0, 1]``; ``0.0`` for an all-zero map.
    """
    cam = np.clip(np.asarray(cam, np.float32), 0, None)
    total = float(cam.sum())
    if total <= 0:
        return 0.0
    h, w = cam.shape
    dh, dw = round(h * (1 - share) / 2), round(w * (1 - share) / 2)
    return float(cam[dh : h - dh, dw : w - dw].sum()) / total


@dataclass(frozen=True)
class WriterOptions:
    """What a :class:`CAMWriter` writes.

    Args:
        save_images (bool): Per-sample PNGs: the input and one overlay per
            target and method. Defaults to True.
        save_raw (bool): Raw maps into the compact store. Defaults to
            False.
        raw_dtype (str): ``'float16'`` or ``'float32'``. Defaults to
            ``'float16'``.
        raw_downsample (int): Store maps this many times smaller.
            Defaults to 1.
        thumbnails (bool): Thumbnail sheets for the gallery. Defaults to
            True.
        suffix (str): File suffix of this process (``'.rank1'``).
            Defaults to ``''``.
        max_pending (int): Queued jobs at most (``0``: write in the
            caller's thread). Defaults to 64.
    """

    save_images: bool = True
    save_raw: bool = False
    raw_dtype: str = 'float16'
    raw_downsample: int = 1
    thumbnails: bool = True
    suffix: str = ''
    max_pending: int = 64


@dataclass
class SampleCAMs:
    """One sample's maps and labels, as handed to :meth:`CAMWriter.add`.

    Args:
        index (int): Dataset index (hook) or input number (tool).
        stem (str): File-name stem of its PNGs (``'000012'``).
        image (np.ndarray): ``HxWx3`` uint8 RGB the maps align with.
        maps (dict): ``{method: (K, H, W)}`` float maps.
        kinds (Sequence[str]): ``K`` target kinds (``'pred'``, ``'gt'``,
            ``'top1'``...).
        targets (Sequence[int]): ``K`` explained classes.
        target_scores (Sequence[float]): ``K`` scores of those classes.
        blank (dict): ``{method: (K,) bool}``, maps zero after the ReLU.
            Defaults to ``{}``.
        info (dict): Columns shared by the sample's rows (``img_path``,
            ``gt``, ``pred``, ``score``, ``misclassified``, ``rank``).
            Defaults to ``{}``.
    """

    index: int
    stem: str
    image: np.ndarray
    maps: Dict[str, np.ndarray]
    kinds: Sequence[str]
    targets: Sequence[int]
    target_scores: Sequence[float]
    blank: Dict[str, np.ndarray] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)


class CAMWriter:
    """Write the files and rows of one dump folder (one process).

    Args:
        folder (str | Path): The dump folder (created on the first write).
        options (WriterOptions): What to write.
            Defaults to ``WriterOptions()``.
        overlay (Callable, optional): ``(rgb image, map) -> rgb overlay``,
            needed for per-sample overlays and thumbnails. Defaults to None.
    """

    def __init__(
        self,
        folder: Union[str, Path],
        options: WriterOptions = WriterOptions(),
        overlay: Optional[Overlay] = None,
    ) -> None:
        self.folder = Path(folder)
        self.options = options
        self.overlay = overlay
        self.rows: List[Dict[str, Any]] = []
        self.jobs = BackgroundWriter(options.max_pending)
        self.store = MapStore(
            self.folder,
            options.raw_dtype,
            options.raw_downsample,
            options.suffix,
        )
        self.thumbs = ThumbSheets(self.folder, suffix=options.suffix)
        self._errors: List[str] = []

    # ------------------------------------------------------------ add
    def add(self, sample: SampleCAMs) -> List[Dict[str, Any]]:
        """Rows of one sample now; its files in the background.

        Rows are complete once :meth:`flush` returned (the background job
        fills ``center_energy``).

        Args:
            sample (SampleCAMs): The sample.

        Returns:
            list[dict]: One row per target and method.
        """
        opts = self.options
        hw = sample.image.shape[:2]
        input_file = f'{sample.stem}_input.png' if opts.save_images else ''
        input_thumb = self.thumbs.reserve('input') if opts.thumbnails else ''
        rows, plan = [], []
        for k, kind in enumerate(sample.kinds):
            target = int(sample.targets[k])
            for method, maps in sample.maps.items():
                blank = sample.blank.get(method)
                row = dict(
                    sample.info,
                    dataset_index=int(sample.index),
                    target_kind=kind,
                    target=target,
                    target_score=float(sample.target_scores[k]),
                    method=method,
                    blank=bool(blank[k]) if blank is not None else False,
                    center_energy=None,
                    file=(
                        f'{sample.stem}_{kind}{target}_{method}.png'
                        if opts.save_images
                        else sample.info.get('file', '')
                    ),
                    raw_file='',
                    raw_row=None,
                    input_file=input_file,
                    thumb='',
                    input_thumb=input_thumb,
                )
                if opts.save_raw:
                    row['raw_file'], row['raw_row'] = self.store.reserve(
                        method, kind, hw
                    )
                if opts.thumbnails:
                    row['thumb'] = self.thumbs.reserve(f'{method}_{kind}')
                rows.append(row)
                plan.append((row, maps[k]))
        self.rows.extend(rows)
        self.jobs.submit(self._write_sample, sample, plan, input_thumb)
        return rows

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run another write job (a grid for the backends...) in order."""
        self.jobs.submit(fn, *args)

    def _write_sample(self, sample: SampleCAMs, plan, input_thumb: str):
        """Background job: every file of one sample."""
        opts = self.options
        image = sample.image
        if opts.save_images or opts.thumbnails:
            self.folder.mkdir(parents=True, exist_ok=True)
        if opts.save_images:
            write_png(self.folder / f'{sample.stem}_input.png', image)
        if input_thumb:
            self.thumbs.put(input_thumb, image)
        small = None
        for row, cam in plan:
            cam = np.asarray(cam, np.float32)[
                : image.shape[0], : image.shape[1]
            ]
            row['center_energy'] = round(center_energy(cam), 4)
            if row['raw_file']:
                self.store.append(row['raw_file'], cam)
            if opts.save_images and self.overlay is not None:
                write_png(self.folder / row['file'], self.overlay(image, cam))
            if row['thumb'] and self.overlay is not None:
                if small is None:
                    small = _shrink(image, TILE_SIZE)
                tile = self.overlay(small, _resize_map(cam, small.shape[:2]))
                self.thumbs.put(row['thumb'], tile)

    # ---------------------------------------------------------- finish
    def flush(self) -> List[str]:
        """Wait for every queued job; the errors so far (and clears them)."""
        errors, self._errors = self._errors + self.jobs.flush(), []
        return errors

    def close(self) -> List[str]:
        """Finish the store and sheets, stop the thread; all errors.

        Rows whose raw map could not be written lose their ``raw_file``
        (so nothing points at a wrong row).
        """
        self.jobs.submit(self._finish_files)
        errors = self.flush() + self.jobs.close()
        if self.store.failed:
            for row in self.rows:
                if row['raw_file'] in self.store.failed:
                    row['raw_file'], row['raw_row'] = '', None
        return errors

    def _finish_files(self) -> None:
        try:
            self.store.close()
        finally:
            self.thumbs.close()


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """The image with its long side at most ``side`` (for thumbnails)."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _resize_map(cam: np.ndarray, hw) -> np.ndarray:
    if cam.shape == tuple(hw):
        return cam
    return cv2.resize(cam, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
