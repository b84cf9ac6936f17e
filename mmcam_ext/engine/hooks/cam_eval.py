"""One evaluation's dump: writing, the DDP cap, backends, index and report.

:class:`EvalDump` receives each explained sample (:class:`CAMSample`) from
the hook and hands it to the shared :class:`~mmcam_ext.fileio.CAMWriter`
(background thread), which streams its rows into this rank's index shard
(``index.sqlite``, ``index.rank1.sqlite``...) as their files reach disk: a
run killed at any point leaves every committed row readable. At the end,
rank 0 reads the rows of every shard and writes the final index, gallery
and report. Under several processes with a cap, samples are held
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

from ...fileio import CAMSample, CAMWriter, read_partial
from ...visualization.dump_tables import write_tables
from .cam_options import DumpOptions
from .cam_selection import first_in_order

__all__ = ['EvalDump', 'GridJob']

#: ``(sample, key) -> grid``: draws the picture sent to the vis backends.
GridJob = Callable[[CAMSample, str], np.ndarray]
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
        meta (dict): Index meta known at the start (phase, methods,
            classes, model fingerprint...), stored in the index at once.
            Defaults to ``{}``.
        expected (list[int] | None): This rank's samples to explain, where
            known, recorded so a killed run says which are missing.
            Defaults to None.
    """

    phase: str
    step: int
    folder: Path
    classes: Optional[Sequence[str]]
    options: DumpOptions
    overlay: Callable[[np.ndarray, np.ndarray], np.ndarray]
    cap: Optional[int]
    draw_grid: Optional[GridJob] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    expected: Optional[List[int]] = None
    errors: List[str] = field(default_factory=list)
    failed_batches: int = 0
    _held: List[Tuple[Key, CAMSample]] = field(default_factory=list)
    _grids: List[Tuple[Key, str, np.ndarray]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _grid_samples: int = 0

    def __post_init__(self) -> None:
        rank, world = get_dist_info()
        self.rank, self.world = rank, world
        self.writer = CAMWriter(
            self.folder,
            self.options.writer_options(f'.rank{rank}' if world > 1 else ''),
            self.overlay,
        )
        self.writer.set_meta(self.meta)
        if self.expected is not None:
            self.writer.expect(self.expected)
        self._layers_noted = False
        # Under N ranks with a cap, a sample is written only once it is
        # known to be among the first `cap` of all ranks.
        self.hold_back = world > 1 and self.cap is not None

    # ------------------------------------------------------------ add
    def note_layers(self, layers: Sequence[str]) -> None:
        """Record the target layers in the index (once)."""
        if not self._layers_noted:
            self._layers_noted = True
            self.writer.set_meta(dict(target_layers=list(layers)))

    def add(self, key: Key, sample: CAMSample) -> None:
        """Write (or hold back) one explained sample."""
        if self.hold_back:
            self._held.append((key, _compact(sample, self.options.signed)))
        else:
            self._write(key, sample)

    def _write(self, key: Key, sample: CAMSample) -> None:
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

    def _grid(self, key: Key, sample: CAMSample, kind: str) -> None:
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
        # Rows stay on disk (every rank's index shard); only counts,
        # errors and grids travel.
        parts = all_gather_object(
            (self._grids, self.failed_batches, self.errors)
        )
        if self.rank != 0:
            return
        errors = [e for p in parts for e in p[2]]
        failed = sum(p[1] for p in parts)
        try:
            stored, rows, _ = read_partial(self.folder)
        except FileNotFoundError:  # nothing was written
            stored, rows = {}, []
        stored.pop('expected', None)
        self._write_tables(rows, dict(stored, **meta, work_dir=work_dir))
        self._to_backends(visualizer, [g for p in parts for g in p[0]])
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
        write_tables(
            self.folder,
            rows,
            dict(meta, classes=self.classes),
            out.index_format,
            out.gallery,
            out.report,
        )

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


def _compact(sample: CAMSample, signed: bool) -> CAMSample:
    """A held-back sample with only the maps it will write: the signed
    ones as they are, else float16 maps (a quarter of the memory)."""
    if signed:
        return replace(sample, maps={})
    return replace(
        sample,
        maps={m: v.astype(np.float16) for m, v in sample.maps.items()},
        raw_maps={},
    )
