"""The one writer of CAM dumps, used by the hook and ``tools/vis_cam.py``.

:class:`CAMWriter` hands each explained sample (:class:`CAMSample`) to a
:class:`BackgroundWriter` thread, which builds its index rows and gives it
to every configured output writer (:mod:`mmcam_ext.fileio.outputs`): raw
maps into the compact store, descriptors, thumbnail tiles, per-sample PNGs,
and the streaming SQLite index, which commits the rows after the files
they point to (:mod:`mmcam_ext.fileio.index_db`). Rows are streamed, not
held: the writer's memory does not grow with the number of samples, and a
run killed at any point leaves every committed row readable. Drawing an
overlay is the caller's (``overlay`` callable: this module sits below the
visualizer), so the same pictures come out wherever a dump is made.

Files of one dump folder with per-sample PNGs off: the index, one map file
per method x target kind (x map size), one descriptor file per method x
target kind, and one thumbnail sheet per 1024 samples per method x target
kind (+ the inputs): O(methods), not O(samples x methods x targets).
"""

import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ..registry import OUTPUT_WRITERS
from ..structures import CAMSample
from .background import BackgroundWriter
from .index_db import db_name, read_shard
from .outputs import BaseOutput, IndexOutput, WriterOptions

__all__ = [
    'CAMWriter',
    'CAMSample',
    'SampleCAMs',
    'WriterOptions',
    'center_energy',
]

#: The former name of :class:`~mmcam_ext.structures.CAMSample`.
SampleCAMs = CAMSample

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


class CAMWriter:
    """Write the files and the streaming index of one dump folder (one
    process).

    :meth:`add` queues a sample; the background thread builds its index
    rows (one per target kind x method), hands the sample to every
    configured output writer (:mod:`mmcam_ext.fileio.outputs`, the index
    last), then commits: first each writer's files, then the rows. Rows are
    not kept in memory; :meth:`read_rows` reads them back from the index.

    Args:
        folder (str | Path): The dump folder (created on the first write).
        options (WriterOptions, optional): What to write.
            Defaults to None (``WriterOptions()``).
        overlay (Callable, optional): ``(rgb image, map) -> rgb overlay``,
            needed for per-sample overlays and thumbnails. Defaults to None.
    """

    def __init__(
        self,
        folder: Union[str, Path],
        options: Optional[WriterOptions] = None,
        overlay: Optional[Overlay] = None,
    ) -> None:
        self.folder = Path(folder)
        self.options = options = options or WriterOptions()
        self.overlay = overlay
        self.jobs = BackgroundWriter(options.max_pending)
        self.outputs: List[BaseOutput] = []
        self.samples = 0
        self._opened = False
        self._errors: List[str] = []
        self._lock = threading.Lock()

    @property
    def index_path(self) -> Path:
        """This process's shard of the streaming index."""
        return self.folder / db_name(self.options.suffix)

    # ------------------------------------------------------------ add
    def add(self, sample: CAMSample) -> None:
        """Queue one sample: its files and rows are written and committed
        in the background, in order."""
        self.samples += 1
        self.jobs.submit(self._write_sample, sample)

    def set_meta(self, meta: Dict[str, Any]) -> None:
        """Store meta values in the index (queued, in order)."""
        self.jobs.submit(self._index_call, 'set_meta', dict(meta))

    def expect(
        self, indices: Sequence[int], paths: Optional[Sequence[str]] = None
    ) -> None:
        """Record the samples this run sets out to explain (queued), so a
        partial dump can say which are missing."""
        self.jobs.submit(self._index_call, 'expect', list(indices), paths)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run another write job (a grid for the backends...) in order."""
        self.jobs.submit(fn, *args)

    # ----------------------------------------------------- worker side
    def _open(self) -> None:
        """Build and open the configured writers (writer thread)."""
        if self._opened:
            return
        self._opened = True
        for cfg in self.options.output_cfgs():
            args = dict(cfg)
            # looked up, not built: a runner's default scope (mmpretrain)
            # has no such registry
            cls = OUTPUT_WRITERS.get(args.pop('type'))
            out = cls(
                folder=self.folder,
                options=self.options,
                overlay=self.overlay,
                **args,
            )
            out.open()
            self.outputs.append(out)

    def _index_call(self, name: str, *args: Any) -> None:
        self._open()
        for out in self.outputs:
            if isinstance(out, IndexOutput):
                getattr(out.db, name)(*args)

    def _write_sample(self, sample: CAMSample) -> None:
        """Background job: rows, every writer's files, then the commit."""
        self._open()
        rows = _rows(sample, self.options.signed)
        for out in self.outputs:
            try:
                out.add(sample, rows)
            except Exception as err:
                self._error(out, err)
        for out in self.outputs:
            try:
                out.commit()
            except Exception as err:
                self._error(out, err)

    def _error(self, out: BaseOutput, err: Exception) -> None:
        with self._lock:
            self._errors.append(f'{type(out).__name__}: {err}')

    # ---------------------------------------------------------- finish
    def flush(self) -> List[str]:
        """Wait for every queued job; the errors so far (and clears them)."""
        jobs = self.jobs.flush()
        with self._lock:
            errors, self._errors = self._errors, []
        return _capped(errors) + jobs

    def close(self) -> List[str]:
        """Finish every writer's files, stop the thread; all errors."""
        self.jobs.submit(self._close_outputs)
        errors = self.flush() + self.jobs.close()
        return errors

    def _close_outputs(self) -> None:
        for out in self.outputs:
            try:
                out.close()
            except Exception as err:
                self._error(out, err)

    def read_rows(self) -> List[Dict[str, Any]]:
        """This process's committed rows (after :meth:`close`)."""
        if not self.index_path.is_file():
            return []
        return read_shard(self.index_path)[1]


#: Error messages kept per flush.
MAX_ERRORS = 20


def _capped(errors: List[str]) -> List[str]:
    if len(errors) <= MAX_ERRORS:
        return errors
    return errors[:MAX_ERRORS] + [f'... {len(errors) - MAX_ERRORS} more']


def _rows(sample: CAMSample, signed: bool) -> List[Dict[str, Any]]:
    """The index rows of one sample, before the writers fill their
    columns: one per target kind x method."""
    rows = []
    for k, kind in enumerate(sample.kinds):
        for method, maps in sample.cams(signed).items():
            blank = sample.blank.get(method)
            h, w = sample.image.shape[:2]
            cam = np.asarray(maps[k], np.float32)[:h, :w]
            rows.append(
                dict(
                    sample.info,
                    dataset_index=int(sample.index),
                    target_kind=kind,
                    target=int(sample.targets[k]),
                    target_score=float(sample.target_scores[k]),
                    method=method,
                    blank=bool(blank[k]) if blank is not None else False,
                    center_energy=round(center_energy(cam), 4),
                    file=sample.info.get('file', ''),
                    raw_file='',
                    raw_row=None,
                    input_file='',
                    thumb='',
                    input_thumb='',
                    desc_file='',
                    desc_row=None,
                )
            )
    return rows
