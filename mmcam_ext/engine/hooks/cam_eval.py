"""One evaluation's dump: writing, the DDP cap, backends, index and report.

:class:`EvalDump` receives each explained sample (:class:`SampleCAMs`) from
the hook and hands it to the shared :class:`~mmcam_ext.fileio.CAMWriter`
(background thread). Under several processes with a cap, samples are held
back until :meth:`EvalDump.finish` has gathered every rank's candidates and
cut them to the cap in single-process order; only the kept ones are written.
:meth:`EvalDump.finish` is called by every rank, also one that explained
nothing or failed, so all of them reach the same collectives.
"""

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.logging import print_log

from ...fileio import (
    CAMWriter,
    SampleCAMs,
    WriterOptions,
    merge_rows,
    write_index,
)
from ...visualization.gallery import write_gallery
from ...visualization.report import write_report
from .cam_options import DumpOptions
from .cam_selection import first_in_order

__all__ = ['EvalDump', 'GridJob']

#: ``(sample, key) -> grid``: draws the picture sent to the vis backends.
GridJob = Callable[[SampleCAMs, str], np.ndarray]
Key = Tuple[int, int]  # (single-process order, dataset index)


@dataclass
class EvalDump:
    """Files and rows of one evaluation on one rank.

    Args:
        phase (str): ``'val'`` or ``'test'``.
        step (int): Backend step (epoch or iteration).
        folder (Path): The evaluation's folder (shared by all ranks).
        classes (Sequence[str] | None): Class names.
        options (DumpOptions): The hook's output options.
        overlay (Callable): ``(image, map) -> overlay`` for PNGs/tiles.
        cap (int | None): ``samples.max_per_eval``.
        draw_grid (GridJob | None): Draws a backend grid; ``None`` when no
            backend receives grids. Defaults to None.
    """

    phase: str
    step: int
    folder: Path
    classes: Optional[Sequence[str]]
    options: DumpOptions
    overlay: Callable[[np.ndarray, np.ndarray], np.ndarray]
    cap: Optional[int]
    draw_grid: Optional[GridJob] = None
    errors: List[str] = field(default_factory=list)
    failed_batches: int = 0
    _held: List[Tuple[Key, SampleCAMs]] = field(default_factory=list)
    _grids: List[Tuple[Key, str, np.ndarray]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _grid_samples: int = 0

    def __post_init__(self) -> None:
        rank, world = get_dist_info()
        self.rank, self.world = rank, world
        out = self.options
        self.writer = CAMWriter(
            self.folder,
            WriterOptions(
                save_images=out.save_images,
                save_raw=out.save_raw,
                raw_dtype='float32' if out.signed else out.raw_dtype,
                raw_downsample=out.raw_downsample,
                thumbnails=out.thumbnails,
                suffix=f'.rank{rank}' if world > 1 else '',
                max_pending=out.max_pending,
            ),
            self.overlay,
        )
        # Under N ranks with a cap, a sample is written only once it is
        # known to be among the first `cap` of all ranks.
        self.hold_back = world > 1 and self.cap is not None

    # ------------------------------------------------------------ add
    def add(self, key: Key, sample: SampleCAMs) -> None:
        """Write (or hold back) one explained sample."""
        if self.hold_back:
            self._held.append(
                (key, sample if self.options.signed else _compact(sample))
            )
        else:
            self._write(key, sample)

    def _write(self, key: Key, sample: SampleCAMs) -> None:
        self.writer.add(sample)
        limit = self.options.backend_samples
        # Each rank sends its own first `limit` samples; rank 0 keeps the
        # global first `limit` of those (see _to_backends).
        if self.draw_grid is not None and (
            limit is None or self._grid_samples < limit
        ):
            self._grid_samples += 1
            for kind in sample.kinds:
                self.writer.submit(self._grid, key, sample, kind)

    def _grid(self, key: Key, sample: SampleCAMs, kind: str) -> None:
        assert self.draw_grid is not None
        grid = self.draw_grid(sample, kind)
        tag = f'cam_{self.phase}_{sample.stem}_{kind}'
        with self._lock:
            self._grids.append((key, tag, grid))

    # --------------------------------------------------------- finish
    def finish(self, work_dir: str, meta: Dict[str, Any], visualizer) -> None:
        """Cut to the cap, flush, gather, write index, gallery, report.

        Every rank must call it (collectives inside).
        """
        # Local steps never raise past here: every rank must reach the
        # collectives, whatever failed on it.
        self._release_held()
        try:
            self.errors += self.writer.close()
        except Exception as err:
            self.errors.append(f'{type(err).__name__}: {err}')
        parts = all_gather_object(
            (self.writer.rows, self._grids, self.failed_batches, self.errors)
        )
        if self.rank != 0:
            return
        rows = merge_rows(p[0] for p in parts)
        errors = [e for p in parts for e in p[3]]
        failed = sum(p[2] for p in parts)
        self._write_tables(rows, dict(meta, work_dir=work_dir))
        self._to_backends(visualizer, [g for p in parts for g in p[1]])
        self._log(rows, failed, errors)

    def _release_held(self) -> None:
        """Under DDP with a cap: keep the global first ``cap`` samples."""
        if not self.hold_back:
            return
        keys = all_gather_object([k for k, _ in self._held])
        kept = first_in_order(keys, self.cap)
        try:
            for key, sample in self._held:
                if key in kept:
                    self._write(key, sample)
        except Exception as err:
            self.errors.append(f'{type(err).__name__}: {err}')
        self._held = []

    def _write_tables(
        self, rows: List[Dict[str, Any]], meta: Dict[str, Any]
    ) -> None:
        out = self.options
        write_index(self.folder, rows, out.index_format, meta)
        title = f'CAMs: {self.folder.name}'
        if out.gallery:
            write_gallery(self.folder, rows, self.classes, title)
        if out.report:
            write_report(self.folder, rows, self.classes, title)

    def _to_backends(self, visualizer, grids) -> None:
        limit = self.options.backend_samples
        order = sorted({k for k, _, _ in grids})
        chosen = set(order if limit is None else order[:limit])
        for key, tag, grid in sorted(grids, key=lambda g: (g[0], g[1])):
            if key in chosen:
                visualizer.add_image(tag, grid, step=self.step)

    def _log(self, rows, failed: int, errors: List[str]) -> None:
        samples = len({r['dataset_index'] for r in rows})
        print_log(
            f'[mmcam_ext] {self.phase}: CAMs of {samples} sample(s) in '
            f'{self.folder}'
            + (f' ({failed} batch(es) failed)' if failed else ''),
            logger='current',
        )
        if errors:
            print_log(
                f'[mmcam_ext] CAMVisualizationHook: {len(errors)} write '
                f'error(s) in {self.folder}; first: ' + '; '.join(errors[:3]),
                logger='current',
                level=logging.WARNING,
            )


def _compact(sample: SampleCAMs) -> SampleCAMs:
    """A held-back sample with float16 maps (half the memory)."""
    return replace(
        sample, maps={m: v.astype(np.float16) for m, v in sample.maps.items()}
    )
