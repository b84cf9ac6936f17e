"""CAMs of chosen samples at every N-th validation / test, side-effect free.

Add to any MMPretrain config::

    custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)
    custom_hooks = [dict(type='CAMVisualizationHook', methods=['gradcam'])]

Three ways to the maps, chosen per model (the debug log says which ran):

* **Pooled-head fast path**: when the target layer reaches the logits only
  through global average pooling and the head (most CNNs at their last
  stage, see :mod:`mmcam_ext.apis.pooled_head`), the layer's output is
  captured by a forward hook during the loop's *own* no-grad
  ``val_step``/``test_step``, and the gradients come from a backward
  through the head alone: no forward of the hook's own.
* **In-loop gradients** (other layers of an ``ImageClassifier``, e.g. a
  class-token ViT's ``ln1``; :mod:`mmcam_ext.apis.loop_grad`): the loop's
  own forward builds the graph from the target layer to the head's scores,
  which go back to the loop detached; the hook backpropagates through that
  tail afterwards. No forward of the hook's own either.
* **General path** (ScoreCAM, AblationCAM, attention methods,
  ``aug_smooth``, models without a ``head``): one extra pass per batch
  that has a chosen sample, for all of its chosen samples, methods and
  targets at once (:class:`~mmcam_ext.apis.CAMEngine`, parameters frozen,
  eval mode, everything restored); none for a batch without one.

Files are written by a background thread (:mod:`mmcam_ext.fileio.writer`),
flushed at the end of each evaluation. Options are checked against the
dataset and the model when the run starts, so a wrong index, class name or
layer stops the run before training; a problem seen only later is a warning
and the run goes on. The hook runs before MMEngine's ``IterTimerHook`` in
``after_*_iter``, so its time is part of the iteration's ``time``, never of
the next iteration's ``data_time``.
"""

import logging
import random
from contextlib import contextmanager
from functools import partial
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
)

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, EpochBasedTrainLoop
from torch import nn

from ...apis.cam_engine import CAMEngine
from ...apis.capture_sources import LoopCapture
from ...errors import InputError
from ...fileio import CAMSample
from ...methods.base import BaseCAMMethod
from ...methods.builder import MethodLike, build_method
from ...registry import HOOKS
from ...structures import CAMResult
from ...utils.image import to_rgb
from ...utils.model import model_fingerprint, unwrap_model
from ...visualization.cam_visualizer import CAMVisualizer
from .cam_eval import EvalDump
from .cam_options import (
    TARGET_KINDS,
    DumpOptions,
    ExplainOptions,
    SampleSelection,
    build_options,
)
from .cam_selection import EvalSelection, Pick, check_selection, label_of

__all__ = ['CAMVisualizationHook']

PHASES = ('val', 'test')
SamplesLike = Union[None, Dict[str, Any], SampleSelection]
OutputLike = Union[None, Dict[str, Any], DumpOptions]
ExplainLike = Union[None, Dict[str, Any], ExplainOptions]


@HOOKS.register_module()
class CAMVisualizationHook(Hook):
    """Dump CAMs of chosen samples during validation and/or test.

    Per evaluation, ``<work_dir>/<output.out_dir>/<phase>_epoch_<n>/`` (or
    ``_iter_<n>``, or ``<phase>_<timestamp>`` for test and val-only runs)
    receives the index (``index.json``/``.csv``), the raw maps in a compact
    store (``maps/``, with ``output.save_raw``; read them with
    :func:`mmcam_ext.fileio.load_cams`), thumbnail sheets, the gallery
    ``index.html``, the false-positive report ``false_positives.*`` and,
    with ``output.save_images``, per-sample PNGs. One grid per sample and
    target also goes to the runner's visualizer backends.

    Args:
        methods (str | dict | BaseCAMMethod | Sequence): CAM method
            name(s) or config dict(s), e.g. ``'gradcam'``,
            ``['gradcam', 'layercam']`` or
            ``[dict(type='rollout', head_fusion='max')]``; a dict's other
            keys are the method's constructor options (see
            ``mmcam_ext.methods``). Defaults to ``('gradcam',)``.
        target (str): Explain the ``'pred'``-icted class, the ``'gt'``
            class or ``'both'``. Defaults to ``'pred'``.
        samples (dict | SampleSelection, optional): :class:`SampleSelection`
            fields as a dict. Defaults to None (its defaults).
        output (dict | DumpOptions, optional): :class:`DumpOptions` fields
            as a dict. Defaults to None (its defaults).
        explain (dict | ExplainOptions, optional): :class:`ExplainOptions`
            fields as a dict (target layers, extra tokens, smoothing).
            Defaults to None (its defaults).
        interval (int): Run at every ``interval``-th evaluation of each
            phase (the ``interval``-th, ``2*interval``-th, ...). Defaults
            to 1.
        phases (str | Sequence[str]): ``'val'`` and/or ``'test'``.
            Defaults to ``('val', 'test')``.
        strict (bool): Re-raise errors of the CAM work; by default they are
            logged as warnings and the evaluation carries on unharmed.
            Defaults to False.
    """

    # Before IterTimerHook (NORMAL): the CAM work of an iteration is booked
    # as that iteration's `time`, not as the next one's `data_time`.
    priority = 'ABOVE_NORMAL'

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
        # unknown names/options fail now, listing the valid ones
        built = [build_method(method) for method in self.methods]
        self.method_names = [m.name for m in built]
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
        if isinstance(interval, bool) or not isinstance(interval, int):
            raise ValueError(f'interval must be an int, got {interval!r}.')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}.')
        self.kinds = ['pred', 'gt'] if target == 'both' else [target]
        self.selection = build_options(SampleSelection, samples, 'samples')
        self.output = build_options(DumpOptions, output, 'output')
        self.explain = build_options(ExplainOptions, explain, 'explain')
        self.interval = interval
        self.strict = strict
        self._evals = dict.fromkeys(PHASES, 0)
        self._dump: Optional[EvalDump] = None
        self._selection: Optional[EvalSelection] = None
        self._capture: Optional[LoopCapture] = None
        self._paths_logged: Set[str] = set()
        self._engine: Optional[CAMEngine] = None
        self._drawer: Optional[CAMVisualizer] = None

    # ---------------------------------------------------------- stages
    def before_run(self, runner) -> None:
        """Check the options against each phase's dataset and the model."""
        for phase in self.phases:
            loop = runner._val_loop if phase == 'val' else runner._test_loop
            if isinstance(loop, BaseLoop):
                self._check_run(runner, loop)

    def before_val_epoch(self, runner) -> None:
        self._begin(runner, 'val', runner.val_loop)

    def before_val_iter(
        self, runner, batch_idx: int, data_batch: Any = None
    ) -> None:
        self._start_capture(data_batch)

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

    def before_test_iter(
        self, runner, batch_idx: int, data_batch: Any = None
    ) -> None:
        self._start_capture(data_batch)

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

    # ----------------------------------------------------- run start
    def _check_run(self, runner, loop: BaseLoop) -> None:
        """Fail now, before any training, on options that cannot work.

        Indices and class names against the dataset; ground-truth targets
        against its labels; target layers (exist, run, fold into a map)
        against one sample through the model. The RNG streams are kept, so
        the check does not shift the run.
        """
        dataset = loop.dataloader.dataset
        check_selection(self.selection, dataset)
        if 'gt' in self.kinds and 'gt_label' not in dataset.get_data_info(0):
            raise InputError(
                f'target={"both" if len(self.kinds) > 1 else "gt"!r} needs '
                'ground-truth labels, but the dataset has none (a test set '
                "without labels?). Use target='pred'."
            )
        model = unwrap_model(runner.model)
        with _rng_kept():
            inputs = _probe_inputs(model, loop.dataloader)
            engine = self._get_engine(model)
            engine.spec_for(inputs)
            engine.prepare_capture(
                inputs, self.methods, self.explain.aug_smooth
            )

    # ------------------------------------------------------ evaluation
    def _begin(self, runner, phase: str, loop: BaseLoop) -> None:
        """Decide whether this evaluation is dumped and set it up.

        Every rank takes the same decision (a counter), so all of them
        reach the collectives in :meth:`_finish` together.
        """
        self._evals[phase] += 1
        self._close_unfinished()
        self._paths_logged = set()
        if phase not in self.phases or self._evals[phase] % self.interval:
            return
        rank, world = get_dist_info()
        step, label = self._step(runner, phase, self._evals[phase])
        classes = loop.dataloader.dataset.metainfo.get('classes')
        classes = list(classes) if classes is not None else None
        self._selection = EvalSelection.build(
            self.selection, loop.dataloader, rank, world
        )
        output = self.output.for_selection(self.selection.bounded)
        if output.save_images is not self.output.save_images and not (
            output.save_images
        ):
            print_log(
                f'[mmcam_ext] {phase}: every sample is explained, so '
                "per-sample PNGs are off (output.save_images='auto'); the "
                'gallery shows every sample from its thumbnail sheets. Set '
                'output.save_images=True to write them.',
                logger='current',
            )
        self._dump = EvalDump(
            phase,
            step,
            Path(runner.work_dir, self.output.out_dir, label),
            classes,
            output,
            self._overlay,
            self.selection.max_per_eval,
            self._grid_job(runner, classes),
            meta=dict(
                self._meta(phase, step, classes),
                model_fingerprint=model_fingerprint(runner.model),
            ),
            expected=self._selection.expected(),
        )
        self._dump.folder.mkdir(parents=True, exist_ok=True)

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

    def _start_capture(self, data_batch: Any) -> None:
        """Ask the engine to capture the loop's own forward when the batch
        may hold a chosen sample (it says no where it cannot)."""
        sel, engine = self._selection, self._engine
        if sel is None or engine is None:
            return
        inputs = (
            data_batch.get('inputs') if isinstance(data_batch, dict) else None
        )
        if inputs is None or not sel.may_pick(len(inputs)):
            return
        self._capture = engine.loop_capture_for(
            self.methods, self.explain.aug_smooth
        )

    def _on_iter(
        self, runner, data_batch: Any, outputs: Optional[Sequence]
    ) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.stop()
        sel, dump = self._selection, self._dump
        if sel is None or dump is None or not outputs:
            return
        try:
            picks = sel.pick(outputs)
            if picks:
                result = self._explain(
                    runner, data_batch, picks, outputs, capture
                )
                self._add_samples(dump, data_batch, outputs, picks, result)
        except Exception as err:
            self._fail(dump, err)
        finally:
            if capture is not None:
                capture.clear()  # drop what it holds (a graph, maybe)

    def _explain(
        self,
        runner,
        data_batch: dict,
        picks: List[Pick],
        outputs: Sequence,
        capture: Optional[LoopCapture],
    ) -> CAMResult:
        """CAMs of the picked samples; the engine picks the path (the
        loop's own forward, captured, or one extra pass).

        The torch RNG is forked and Python's and NumPy's kept, so the extra
        work does not shift the random streams of the run.
        """
        model = unwrap_model(runner.model)
        engine = self._get_engine(model)
        rows = [p.row for p in picks]
        targets = np.array(
            [[self._target(outputs[i], k) for k in self.kinds] for i in rows]
        )
        with _rng_kept():
            result = engine.explain_capture(
                capture,
                self.methods,
                targets,
                rows,
                partial(_preprocess, model, data_batch),
                aug_smooth=self.explain.aug_smooth,
                eigen_smooth=self.explain.eigen_smooth,
                descriptors=self._descriptors,
            )
        self._log_path(engine.last_path)
        return result

    def _log_path(self, path: str) -> None:
        """Say at debug level, once per evaluation, which path ran."""
        if path not in self._paths_logged:
            self._paths_logged.add(path)
            print_log(
                f'[mmcam_ext] CAMVisualizationHook: {path}',
                logger='current',
                level=logging.DEBUG,
            )

    def _add_samples(
        self,
        dump: EvalDump,
        data_batch: dict,
        outputs: Sequence,
        picks: List[Pick],
        result: CAMResult,
    ) -> None:
        """Hand each picked sample to the evaluation's writer."""
        rank = get_dist_info()[0]
        dump.note_layers(result.target_layers)
        for j, pick in enumerate(picks):
            sample = outputs[pick.row]
            image = to_rgb(data_batch['inputs'][pick.row].cpu().numpy(), 'bgr')
            gt = label_of(sample, 'gt_label')
            pred = label_of(sample, 'pred_label')
            pred = int(result.pred_labels[j]) if pred is None else pred
            info = dict(
                img_path=sample.get('img_path', ''),
                gt=gt,
                pred=pred,
                score=_score(sample, pred, float(result.pred_scores[j])),
                misclassified=gt is not None and gt != pred,
                rank=rank,
            )
            dump.add(
                (pick.order, pick.index),
                result.sample(j, pick.index, image, self.kinds, info),
            )

    # ---------------------------------------------------------- drawing
    def _overlay(self, image: np.ndarray, cam: np.ndarray) -> np.ndarray:
        out = self.output
        return CAMVisualizer.overlay(
            image, cam, out.alpha, out.colormap, out.signed
        )

    def _grid_job(self, runner, classes):
        """Draws one backend grid, or ``None`` when no backend gets one."""
        vis = runner.visualizer
        if not self.output.to_backends or not getattr(
            vis, '_vis_backends', None
        ):
            return None
        drawer = vis
        if not isinstance(drawer, CAMVisualizer):
            # Built directly, so it does not replace the runner's
            # visualizer as MMEngine's current instance.
            if self._drawer is None:
                self._drawer = CAMVisualizer(name='mmcam_ext_hook_drawer')
            drawer = self._drawer

        signed = self.output.signed

        def draw(sample: CAMSample, kind: str) -> np.ndarray:
            k = list(sample.kinds).index(kind)
            info = sample.info
            return drawer.draw_cam(
                sample.image,
                {n: m[k] for n, m in sample.cams(signed).items()},
                signed=signed,
                gt_label=info['gt'],
                pred_label=info['pred'],
                pred_score=info['score'],
                target_label=int(sample.targets[k]),
                classes=classes,
                alpha=self.output.alpha,
                colormap=self.output.colormap,
                add_to_backends=False,
            )

        return draw

    # --------------------------------------------------------- helpers
    def _get_engine(self, model: nn.Module) -> CAMEngine:
        if self._engine is None or self._engine.model is not model:
            self._engine = CAMEngine(
                model,
                self.explain.target_layers,
                self.explain.num_extra_tokens,
            )
        return self._engine

    def _target(self, sample, kind: str) -> int:
        label = label_of(sample, f'{kind}_label')
        if label is None:
            raise InputError(
                f'target={kind!r} needs {kind}_label in the data samples, '
                "but this batch has none. Use target='pred'."
            )
        return label

    # ---------------------------------------------------------- finish
    def _finish(self, runner) -> None:
        """Flush and gather every rank; rank 0 writes index, gallery,
        report and backends. Every rank calls the collectives, also one
        that explained nothing or failed, so no rank waits forever."""
        dump, self._dump, self._selection = self._dump, None, None
        if dump is None:
            return
        meta = self._meta(dump.phase, dump.step, dump.classes)
        try:
            dump.finish(str(runner.work_dir), meta, runner.visualizer)
        except Exception as err:
            self._fail(dump, err)

    def _meta(self, phase: str, step: int, classes) -> Dict[str, Any]:
        """The index meta of one evaluation."""
        return dict(
            phase=phase,
            step=step,
            methods=self.method_names,
            target=self.kinds,
            classes=classes,
        )

    @property
    def _descriptors(self) -> bool:
        """Evidence descriptors are stored with the raw maps."""
        return self.output.save_raw and self.output.descriptors

    def _close_unfinished(self) -> None:
        """An evaluation that ended in an exception left its writer open."""
        dump, self._dump, self._selection = self._dump, None, None
        if self._capture is not None:
            self._capture.stop()
            self._capture = None
        if dump is not None:
            dump.writer.close()

    def _fail(self, dump: EvalDump, err: Exception) -> None:
        if self.strict:
            raise err
        dump.failed_batches += 1
        print_log(
            f'[mmcam_ext] CAMVisualizationHook skipped a batch: '
            f'{type(err).__name__}: {err}. The {dump.phase} run continues '
            '(set strict=True to stop on such errors).',
            logger='current',
            level=logging.WARNING,
        )


def _score(sample, pred: int, default: float) -> float:
    scores = sample.get('pred_score')
    return float(scores[pred]) if scores is not None else default


def _probe_inputs(model: nn.Module, loader) -> torch.Tensor:
    """One preprocessed sample of ``loader``'s dataset (the first)."""
    return _preprocess(model, loader.collate_fn([loader.dataset[0]]))


def _preprocess(model: nn.Module, data_batch: dict) -> torch.Tensor:
    """The model's own preprocessing of a loader batch (no augmentation)."""
    preprocessor = model.data_preprocessor
    assert isinstance(preprocessor, nn.Module)  # MMEngine's BaseModel
    return preprocessor(data_batch, False)['inputs']


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's CPU RNG state afterwards.

    Some methods draw from them (RandomCAM uses ``np.random``); the data
    pipeline's augmentations draw from the same streams, so the run must not
    see them move.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
