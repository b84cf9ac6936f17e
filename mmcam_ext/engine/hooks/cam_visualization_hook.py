"""CAMs of chosen samples at every N-th validation / test, side-effect free.

Add to any MMPretrain config::

    custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)
    custom_hooks = [dict(type='CAMVisualizationHook', methods=['gradcam'])]

The val loop runs under ``torch.no_grad()``; the CAMs come from a separate
forward with grad enabled on the unwrapped model in eval mode
(:class:`~mmcam_ext.apis.CAMEngine`), which restores ``requires_grad``,
``.grad``, training flags and removes its torch hooks. This hook adds: which
samples, where the files go, and the distributed bookkeeping (each rank
explains its shard; the index is merged on rank 0).
"""

import logging
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    overload,
)

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dist import all_gather_object, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, EpochBasedTrainLoop
from torch import nn

from ...apis.cam_engine import CAMEngine
from ...fileio.cam_dump import merge_rows, write_index, write_png
from ...methods.base import BaseCAMMethod, MethodLike, build_method
from ...registry import HOOKS
from ...utils.image import to_rgb
from ...visualization.cam_visualizer import CAMVisualizer
from ...visualization.gallery import write_gallery
from .cam_options import (
    TARGET_KINDS,
    DumpOptions,
    ExplainOptions,
    SampleSelection,
    build_options,
)

__all__ = ['CAMVisualizationHook']

PHASES = ('val', 'test')
SamplesLike = Union[None, Dict[str, Any], SampleSelection]
OutputLike = Union[None, Dict[str, Any], DumpOptions]
ExplainLike = Union[None, Dict[str, Any], ExplainOptions]
Pick = Tuple[int, int]  # (position in the batch, dataset index)


@dataclass
class _EvalState:
    """Bookkeeping of one evaluation; built fresh in ``before_*_epoch``."""

    phase: str
    step: int
    folder: Path
    candidates: Optional[Set[int]]  # None: every sample is a candidate
    class_ids: Optional[Set[int]]
    classes: Optional[Sequence[str]]
    quota: int  # samples this rank may explain
    local_indices: List[int]  # dataset indices of this rank's shard
    padded_from: Optional[int]  # shard positions >= this are sampler padding
    position: int = 0
    rows: List[Dict[str, Any]] = field(default_factory=list)
    grids: List[Tuple[str, np.ndarray]] = field(default_factory=list)
    errors: int = 0


@HOOKS.register_module()
class CAMVisualizationHook(Hook):
    """Dump CAMs of chosen samples during validation and/or test.

    Per evaluation, ``<work_dir>/<output.out_dir>/<phase>_epoch_<n>/`` (or
    ``_iter_<n>``, or ``test/``) receives ``<idx>_input.png``, one overlay
    ``<idx>_<pred|gt><class>_<Method>.png`` per target and method, optional
    ``.npy`` maps, ``index.json``/``index.csv`` and ``index.html``. One grid
    per sample and target also goes to the runner's visualizer backends with
    the epoch (epoch-based) or iteration as step.

    Args:
        methods: CAM method name(s) or config dict(s), e.g. ``'gradcam'``,
            ``['gradcam', 'layercam']`` or
            ``[dict(type='rollout', head_fusion='max')]``; a dict's other
            keys are the method's constructor options (see
            ``mmcam_ext.methods``).
        target: Explain the ``'pred'``-icted class, the ``'gt'`` class or
            ``'both'``.
        samples: :class:`SampleSelection` fields as a dict.
        output: :class:`DumpOptions` fields as a dict.
        explain: :class:`ExplainOptions` fields as a dict (target layers,
            extra tokens, smoothing).
        interval: Run at every ``interval``-th evaluation of each phase
            (the ``interval``-th, ``2*interval``-th, ...). Defaults to 1.
        phases: ``'val'`` and/or ``'test'``.
        strict: Re-raise errors of the CAM work; by default they are logged
            as warnings and the evaluation carries on unharmed.
    """

    priority = 'LOW'

    def __init__(
        self,
        methods: Union[MethodLike, Sequence[MethodLike]] = ('gradcam',),
        target: str = 'pred',
        samples: SamplesLike = None,
        output: OutputLike = None,
        explain: ExplainLike = None,
        interval: int = 1,
        phases: Union[str, Sequence[str]] = PHASES,
        strict: bool = False,
    ) -> None:
        self.methods: List[MethodLike] = (
            [methods]
            if isinstance(methods, (str, Mapping, BaseCAMMethod))
            else list(methods)
        )
        if not self.methods:
            raise ValueError('methods is empty: name at least one CAM method.')
        for method in self.methods:
            build_method(method)  # unknown names/options fail now
        if target not in TARGET_KINDS:
            raise ValueError(
                f'target must be one of {TARGET_KINDS}, got {target!r}.'
            )
        self.phases = (phases,) if isinstance(phases, str) else tuple(phases)
        if not self.phases or set(self.phases) - set(PHASES):
            raise ValueError(
                f'phases must be a non-empty subset of {PHASES}, '
                f'got {phases!r}.'
            )
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}.')
        self.kinds = ['pred', 'gt'] if target == 'both' else [target]
        self.selection = build_options(SampleSelection, samples, 'samples')
        self.output = build_options(DumpOptions, output, 'output')
        self.explain = build_options(ExplainOptions, explain, 'explain')
        self.interval = interval
        self.strict = strict
        self._evals = dict.fromkeys(PHASES, 0)
        self._state: Optional[_EvalState] = None
        self._engine: Optional[CAMEngine] = None
        self._drawer: Optional[CAMVisualizer] = None

    # ---------------------------------------------------------- stages
    def before_val_epoch(self, runner) -> None:
        self._begin(runner, 'val', runner.val_loop)

    def after_val_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Sequence] = None,
    ) -> None:
        self._on_iter(runner, data_batch, outputs)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish(runner)

    def before_test_epoch(self, runner) -> None:
        self._begin(runner, 'test', runner.test_loop)

    def after_test_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Sequence] = None,
    ) -> None:
        self._on_iter(runner, data_batch, outputs)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish(runner)

    # ------------------------------------------------------- selection
    def _begin(self, runner, phase: str, loop: BaseLoop) -> None:
        """Decide whether this evaluation is dumped and what it may take.

        Every rank takes the same decision (a counter), so all of them reach
        the collective in :meth:`_finish` together.
        """
        self._evals[phase] += 1
        self._state = None
        if phase not in self.phases or self._evals[phase] % self.interval:
            return
        dataloader = loop.dataloader
        dataset = dataloader.dataset
        rank, world_size = get_dist_info()
        step, label = self._step(runner, phase, self._evals[phase])
        classes = dataset.metainfo.get('classes')
        self._state = _EvalState(
            phase=phase,
            step=step,
            folder=Path(runner.work_dir, self.output.out_dir, label),
            candidates=self._candidates(len(dataset)),
            class_ids=self._class_ids(classes),
            classes=list(classes) if classes is not None else None,
            quota=math.ceil(self.selection.max_per_eval / world_size),
            local_indices=list(iter(dataloader.sampler)),
            padded_from=(
                math.ceil((len(dataset) - rank) / world_size)
                if isinstance(dataloader.sampler, DefaultSampler)
                else None
            ),
        )
        self._state.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _step(runner, phase: str, count: int) -> Tuple[int, str]:
        """Backend step and folder name: epoch or iteration of training.

        ``runner._train_loop`` is read instead of ``runner.train_loop``
        because the property *builds* a configured train loop (and its
        dataloader) even in a validation-only run. Test and val-only runs
        have no training step, so their folder carries the run's timestamp
        (the same on every rank: MMEngine broadcasts it) and this hook's
        evaluation count: a second run in the same work dir never
        overwrites the first one's dump.
        """
        loop = runner._train_loop
        if phase == 'test' or not isinstance(loop, BaseLoop):
            suffix = f'_{count}' if count > 1 else ''
            return 0, f'{phase}_{runner.timestamp}{suffix}'
        if isinstance(loop, EpochBasedTrainLoop):
            return runner.epoch, f'{phase}_epoch_{runner.epoch}'
        return runner.iter, f'{phase}_iter_{runner.iter}'

    def _candidates(self, size: int) -> Optional[Set[int]]:
        sel = self.selection
        if sel.mode == 'all':
            return None
        if sel.mode == 'first':
            return set(range(min(sel.num, size)))
        if sel.mode == 'random':
            rng = np.random.default_rng(sel.seed)
            return {
                int(i)
                for i in rng.choice(size, min(sel.num, size), replace=False)
            }
        bad = [i for i in sel.indices if not 0 <= int(i) < size]
        if bad:
            raise IndexError(
                f'samples.indices {bad} out of range: the '
                f'dataset has {size} samples (0..{size - 1}).'
            )
        return {int(i) for i in sel.indices}

    def _class_ids(
        self, classes: Optional[Sequence[str]]
    ) -> Optional[Set[int]]:
        wanted = self.selection.classes
        if wanted is None:
            return None
        names = list(classes or [])
        ids = set()
        for cls in wanted:
            if isinstance(cls, str):
                if cls not in names:
                    raise KeyError(
                        f'samples.classes: no class {cls!r} in the '
                        f'dataset; its classes are {names}.'
                    )
                ids.add(names.index(cls))
            else:
                ids.add(int(cls))
        return ids

    def _pick(
        self, st: _EvalState, outputs: Sequence, start: int
    ) -> List[Pick]:
        """Samples of this batch to explain: candidates, filters, quota."""
        picks: List[Pick] = []
        taken = len({row['dataset_index'] for row in st.rows})
        for i, sample in enumerate(outputs):
            pos = start + i
            if taken + len(picks) >= st.quota or (
                st.padded_from is not None and pos >= st.padded_from
            ):
                break  # quota reached, or the sampler's padding repeats
            idx = sample.get('sample_idx')
            idx = int(st.local_indices[pos] if idx is None else idx)
            gt, pred = _label(sample, 'gt_label'), _label(sample, 'pred_label')
            if (
                (st.candidates is not None and idx not in st.candidates)
                or (
                    self.selection.misclassified_only
                    and (gt is None or gt == pred)
                )
                or (st.class_ids is not None and gt not in st.class_ids)
            ):
                continue
            picks.append((i, idx))
        return picks

    # ----------------------------------------------------------- work
    def _on_iter(
        self, runner, data_batch: Any, outputs: Optional[Sequence]
    ) -> None:
        st = self._state
        if st is None or not outputs:
            return
        start, st.position = st.position, st.position + len(outputs)
        try:
            picks = self._pick(st, outputs, start)
            if picks:
                self._explain_batch(runner, st, data_batch, outputs, picks)
        except Exception as err:
            self._fail(st, err)

    def _explain_batch(
        self,
        runner,
        st: _EvalState,
        data_batch: dict,
        outputs: Sequence,
        picks: List[Pick],
    ) -> None:
        """CAMs of the picked samples, written to disk and kept for backends.

        The torch RNG is forked so the extra work does not shift the random
        stream of the training that follows.
        """
        model = getattr(runner.model, 'module', runner.model)
        rows = [i for i, _ in picks]
        targets = np.array(
            [
                [self._target(outputs[i], kind) for kind in self.kinds]
                for i in rows
            ]
        )
        with torch.random.fork_rng(devices=[]), _python_numpy_rng_kept():
            inputs = model.data_preprocessor(data_batch, False)['inputs']
            result = self._get_engine(model).explain(
                inputs[rows],
                methods=self.methods,
                targets=targets,
                aug_smooth=self.explain.aug_smooth,
                eigen_smooth=self.explain.eigen_smooth,
            )
        for j, (i, idx) in enumerate(picks):
            self._dump_sample(
                runner, st, data_batch['inputs'][i], outputs[i], idx, result, j
            )

    def _dump_sample(
        self,
        runner,
        st: _EvalState,
        raw: torch.Tensor,
        sample,
        idx: int,
        result,
        j: int,
    ) -> None:
        """Write one sample's input, overlays and maps; record its rows."""
        out = self.output
        image = to_rgb(raw.cpu().numpy(), 'bgr')  # MMPretrain loads BGR
        height, width = image.shape[:2]
        stem = f'{idx:06d}'
        write_png(st.folder / f'{stem}_input.png', image)
        gt, pred = _label(sample, 'gt_label'), int(result.pred_labels[j])
        pred = _label(sample, 'pred_label', pred)
        score = _score(sample, pred, float(result.pred_scores[j]))
        maps = result.raw_maps if out.signed else result.maps
        for k, kind in enumerate(self.kinds):
            target = int(result.targets[j, k])
            cams = {name: m[j, k, :height, :width] for name, m in maps.items()}
            for name, cam in cams.items():
                file = f'{stem}_{kind}{target}_{name}.png'
                write_png(
                    st.folder / file,
                    CAMVisualizer.overlay(
                        image, cam, out.alpha, out.colormap, out.signed
                    ),
                )
                raw_file = ''
                if out.save_raw:
                    raw_file = file[:-4] + '.npy'
                    np.save(st.folder / raw_file, cam.astype(np.float32))
                st.rows.append(
                    dict(
                        dataset_index=idx,
                        img_path=sample.get('img_path', ''),
                        gt=gt,
                        pred=pred,
                        score=score,
                        misclassified=gt is not None and gt != pred,
                        target_kind=kind,
                        target=target,
                        target_score=float(result.target_scores[j, k]),
                        method=name,
                        file=file,
                        raw_file=raw_file,
                        input_file=f'{stem}_input.png',
                        rank=get_dist_info()[0],
                    )
                )
            if out.to_backends:
                st.grids.append(
                    (
                        f'cam_{st.phase}/{stem}_{kind}',
                        self._draw_grid(
                            runner, st, image, cams, gt, pred, score, target
                        ),
                    )
                )

    def _draw_grid(
        self,
        runner,
        st: _EvalState,
        image: np.ndarray,
        cams: Dict[str, np.ndarray],
        gt: Optional[int],
        pred: int,
        score: float,
        target: int,
    ) -> np.ndarray:
        """Original + one overlay per method, drawn by a CAMVisualizer.

        The runner's visualizer draws if it is one; otherwise a private
        instance (built directly, so it does not replace the runner's as
        MMEngine's current instance) draws and the runner's backends only
        receive the picture.
        """
        drawer = runner.visualizer
        if not isinstance(drawer, CAMVisualizer):
            if self._drawer is None:
                self._drawer = CAMVisualizer(name='mmcam_ext_hook_drawer')
            drawer = self._drawer
        return drawer.draw_cam(
            image,
            cams,
            signed=self.output.signed,
            gt_label=gt,
            pred_label=pred,
            pred_score=score,
            target_label=target,
            classes=st.classes,
            alpha=self.output.alpha,
            colormap=self.output.colormap,
            add_to_backends=False,
        )

    def _get_engine(self, model: nn.Module) -> CAMEngine:
        if self._engine is None or self._engine.model is not model:
            self._engine = CAMEngine(
                model,
                self.explain.target_layers,
                self.explain.num_extra_tokens,
            )
        return self._engine

    def _target(self, sample, kind: str) -> int:
        label = _label(sample, f'{kind}_label')
        if label is None:
            raise ValueError(
                f'target={kind!r} needs {kind}_label in the data samples, '
                'but this dataset has none (a test set without labels?). '
                "Use target='pred'."
            )
        return label

    # ---------------------------------------------------------- finish
    def _finish(self, runner) -> None:
        """Gather rows and grids on rank 0; write index, gallery, backends.

        Every rank calls the collective, also one that explained nothing or
        failed, so no rank waits forever.
        """
        st, self._state = self._state, None
        if st is None:
            return
        parts = all_gather_object((st.rows, st.grids, st.errors))
        if not is_main_process():
            return
        try:
            rows = merge_rows(p[0] for p in parts)
            self._write_outputs(runner, st, rows)
            for name, grid in sorted(g for p in parts for g in p[1]):
                runner.visualizer.add_image(name, grid, step=st.step)
            errors = sum(p[2] for p in parts)
            print_log(
                f'[mmcam_ext] {st.phase}: CAMs of '
                f'{len({r["dataset_index"] for r in rows})} sample(s) in '
                f'{st.folder}'
                + (f' ({errors} batch(es) failed)' if errors else ''),
                logger='current',
            )
        except Exception as err:
            self._fail(st, err)

    def _write_outputs(
        self, runner, st: _EvalState, rows: List[Dict[str, Any]]
    ) -> None:
        meta = dict(
            phase=st.phase,
            step=st.step,
            methods=self.methods,
            target=self.kinds,
            classes=st.classes,
            work_dir=str(runner.work_dir),
        )
        write_index(st.folder, rows, self.output.index_format, meta)
        if self.output.gallery:
            write_gallery(
                st.folder,
                rows,
                classes=st.classes,
                title=f'CAMs: {st.folder.name}',
            )

    def _fail(self, st: _EvalState, err: Exception) -> None:
        if self.strict:
            raise err
        st.errors += 1
        print_log(
            f'[mmcam_ext] CAMVisualizationHook skipped a batch: '
            f'{type(err).__name__}: {err}. The {st.phase} run continues '
            '(set strict=True to stop on such errors).',
            logger='current',
            level=logging.WARNING,
        )


@overload
def _label(sample, key: str, default: None = None) -> Optional[int]: ...


@overload
def _label(sample, key: str, default: int) -> int: ...


def _label(sample, key: str, default: Optional[int] = None) -> Optional[int]:
    """First label of ``gt_label``/``pred_label`` as int, or ``default``."""
    value = sample.get(key)
    if value is None or len(value) == 0:
        return default
    return int(value[0])


def _score(sample, pred: int, default: float) -> float:
    scores = sample.get('pred_score')
    return float(scores[pred]) if scores is not None else default


@contextmanager
def _python_numpy_rng_kept() -> Iterator[None]:
    """Restore Python's and NumPy's global RNG state after the CAM work.

    Some methods draw from them (RandomCAM uses ``np.random``); the data
    pipeline's augmentations draw from the same streams, so the run must not
    see them move.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
