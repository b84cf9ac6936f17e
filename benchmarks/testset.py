"""The hook on every sample of a test set, with the default output options.

For each model: one ``Runner`` without the hook and one per method with
:class:`CAMVisualizationHook` explaining every sample (``samples=dict(
mode='all', max_per_eval=None)``, ``output`` left at its defaults), all on
the same weights and data; their ``test()`` runs alternate round by round
in one process. Each round gives one ratio per method (with / without);
the rows print the median and the spread (min-max) over the rounds, in
wall time and in process CPU time (all threads of this process: steadier
when other jobs share the cores).

For the gradient attention methods a *floor* is measured in the same
rounds: per test batch a forward with grad from the patch embedding
(parameters frozen) and, timed alone, one activation-only backward from
the predicted scores to it (through every block). The floor ratio is the
hook's extra time (with - without) divided by that backward's time.

With ``profile`` the GradCAM rows also time the hook with parts of the
default output switched off (gallery and thumbnails, report) or on
(per-sample PNGs, off by default for every sample), so the rows say where
the extra time goes.
"""

import os.path as osp
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .scale import _named

__all__ = [
    'EverySampleCase',
    'EVERY_SAMPLE_MODELS',
    'every_sample_rows',
    'Spread',
]

#: Attention methods of the rows; the gradient ones also get a floor.
ATTENTION = ('attention_rollout', 'grad_attention', 'attention_relevance')
GRADIENT = ('grad_attention', 'attention_relevance')

#: Output parts switched off one at a time for the profile (hook options).
PROFILE = {
    # Per-sample PNGs are off by default when every sample is explained
    # (save_images='auto'); this row is their cost when asked for.
    'with PNGs': dict(save_images=True),
    'no gallery/thumbs': dict(gallery=False, thumbnails=False),
    'no report': dict(report=False),
    # The descriptors' cost: the raw store with and without them.
    'raw store': dict(save_raw=True),
    'raw store, no descriptors': dict(save_raw=True, descriptors=False),
}
#: The two profile variants whose difference is the descriptors' cost.
DESCRIPTORS_ON, DESCRIPTORS_OFF = 'raw store', 'raw store, no descriptors'


@dataclass(frozen=True)
class EverySampleCase:
    """A model, its test set and the methods explained.

    Args:
        label: Name printed in tables.
        model: ``mmpretrain.get_model`` name, or a model config dict
            (``TimmClassifier``).
        size: Side of the generated test images.
        methods: Methods, one hook run each.
        floor: Measure the activation-backward floor.
    """

    label: str
    model: Union[str, dict]
    size: int = 224
    methods: Tuple[str, ...] = ATTENTION
    floor: bool = True


EVERY_SAMPLE_MODELS: Dict[str, EverySampleCase] = {
    'deit-tiny': EverySampleCase('DeiT-tiny', 'deit-tiny_4xb256_in1k'),
    'swin-tiny': EverySampleCase('Swin-tiny', 'swin-tiny_16xb64_in1k'),
    'volo-d1': EverySampleCase(
        'VOLO-d1 (TimmClassifier)',
        dict(
            type='TimmClassifier',
            model_name='volo_d1_224',
            pretrained=False,
            num_classes=3,
        ),
    ),
    'resnet50-gradcam': EverySampleCase(
        'ResNet-50', 'resnet50_8xb32_in1k', methods=('GradCAM',), floor=False
    ),
    'deit-tiny-gradcam': EverySampleCase(
        'DeiT-tiny', 'deit-tiny_4xb256_in1k', methods=('GradCAM',), floor=False
    ),
    # Small stand-ins for --quick and the tests of the benchmark.
    'deit-tiny-96': EverySampleCase(
        'DeiT-tiny@96', 'deit-tiny_4xb256_in1k', 96
    ),
    'resnet18-64-gradcam': EverySampleCase(
        'ResNet-18@64',
        'resnet18_8xb32_in1k',
        64,
        methods=('GradCAM',),
        floor=False,
    ),
}


@dataclass
class Spread:
    """Median and range of per-round values."""

    values: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def text(self, digits: int = 2) -> str:
        """``median [min-max]``."""
        lo, hi = min(self.values), max(self.values)
        return f'{self.median:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]'


def _model_cfg(case: EverySampleCase):
    from mmengine.config import ConfigDict
    from mmpretrain import get_model

    if isinstance(case.model, dict):
        return ConfigDict(case.model)
    cfg = get_model(case.model, pretrained=False)._config.model
    cfg.head.num_classes = 3
    cfg.pop('data_preprocessor', None)
    cfg.pop('train_cfg', None)  # batch augments: training only
    return cfg


def _cfg(case, num, batch, root, name, hook):
    from .datasets.shapes_train import prepare_shapes_data, shapes_config

    data_root = osp.join(root, 'data')
    cfg = shapes_config('cnn', data_root, epochs=1)
    cfg.shapes_data.train_per_class = 1
    cfg.shapes_data.val_per_class = -(-num // 3)
    prepare_shapes_data(data_root, cfg, (case.size, case.size), seed=0)
    cfg.model = _model_cfg(case)
    cfg.test_dataloader.batch_size = batch
    return _named(cfg, root, name, hook)


def _hook(method: str, **output) -> dict:
    return dict(
        type='CAMVisualizationHook',
        methods=[method],
        samples=dict(mode='all', max_per_eval=None),
        output=output or None,
        phases='test',
    )


def _test_inputs(runner) -> List[torch.Tensor]:
    """The test set's preprocessed batches (prepared once, outside the
    timed part)."""
    return [
        runner.model.data_preprocessor(b, False)['inputs']
        for b in runner.test_dataloader
    ]


def _floor_fn(runner) -> Callable[[], float]:
    """Seconds of the activation-only backwards over the test set."""
    from mmcam_ext.utils.capture import (
        LayerCapture,
        eval_mode,
        frozen_parameters,
    )
    from mmcam_ext.utils.model import classifier_logits, feature_root

    model = runner.model
    embed = feature_root(model)[1].patch_embed
    conv = getattr(embed, 'projection', None) or embed.proj
    batches = _test_inputs(runner)

    def run() -> float:
        spent = 0.0
        with eval_mode(model), frozen_parameters(model):
            for x in batches:
                with LayerCapture([conv]) as cap, torch.enable_grad():
                    logits = classifier_logits(model, x)
                    score = logits.gather(1, logits.argmax(1, True)).sum()
                    start = time.perf_counter()
                    torch.autograd.grad(score, cap.outputs[0])
                    spent += time.perf_counter() - start
        return spent

    return run


def _recompute_fn(runner) -> Callable[[], float]:
    """Seconds spent forming every block's attention probabilities over the
    test set, beside the model's own (kept) kernels: what rollout cannot
    avoid while the loop's outputs stay bit-identical."""
    from mmcam_ext.methods.attention_capture import AttentionCapture
    from mmcam_ext.utils.capture import eval_mode
    from mmcam_ext.utils.model import classifier_logits

    model = runner.model
    batches = _test_inputs(runner)

    def run() -> float:
        spent = 0.0
        with eval_mode(model), torch.no_grad():
            for x in batches:
                with AttentionCapture(model, keep_kernel=True) as cap:
                    classifier_logits(model, x)
                    blocks = cap.collected()
                start = time.perf_counter()
                formed = [block.attn for block in blocks]
                spent += time.perf_counter() - start
                del formed
        return spent

    return run


def _rounds(
    fns: Dict[str, Callable[[], Optional[float]]], repeats: int, warmup: int
) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Wall and process-CPU seconds per round of each callable,
    round-robin; a callable that returns a float reports its own time (the
    floor, for both)."""
    wall: Dict[str, List[float]] = {name: [] for name in fns}
    cpu: Dict[str, List[float]] = {name: [] for name in fns}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            own = fn()
            spent = time.perf_counter() - start
            spent_cpu = time.process_time() - start_cpu
            if rnd >= warmup:
                own_f = own if isinstance(own, float) else None
                wall[name].append(own_f or spent)
                cpu[name].append(own_f or spent_cpu)
    return wall, cpu


def every_sample_rows(
    case: EverySampleCase,
    num: int,
    batch: int,
    repeats: int,
    root: Optional[str] = None,
    profile: bool = False,
    compare: bool = False,
) -> Dict[str, object]:
    """Ratios of one model: per method with/without, floor ratios.

    With ``compare`` the first gradient attention method also runs on the
    general path (an engine with ``fast_path=False``: a second forward and
    backward per batch), for an A/B in the same rounds.

    Returns:
        dict: ``without`` (:class:`Spread` of seconds), ``ratio``,
        ``cpu_ratio`` (the same in process CPU time, steadier on a shared
        machine), ``extra`` (seconds with - without) and ``floor`` (method
        -> :class:`Spread`), ``floor_s``, ``recompute_s`` (seconds forming
        the probabilities beside the kept kernels: rollout's bound),
        ``samples``, ``paths`` (method -> the path the engine logged),
        ``descriptors`` (with ``profile``: a :class:`Spread` of the
        descriptors' share of the hook run with the raw store, else None).
    """
    from mmengine.runner import Runner

    variants: List[Tuple[str, dict]] = [(m, _hook(m)) for m in case.methods]
    general = [m for m in case.methods if m in GRADIENT][:1] if compare else []
    variants += [(f'{m}, general path', _hook(m)) for m in general]
    if profile:
        variants += [
            (f'{case.methods[0]}, {part}', _hook(case.methods[0], **opts))
            for part, opts in PROFILE.items()
        ]
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        torch.manual_seed(0)
        without = Runner.from_cfg(_cfg(case, num, batch, tmp, 'off', None))
        state = without.model.state_dict()
        runners = {}
        for i, (name, hook) in enumerate(variants):
            runners[name] = Runner.from_cfg(
                _cfg(case, num, batch, tmp, f'on{i}', hook)
            )
            runners[name].model.load_state_dict(state)
            if name.endswith('general path'):
                _general_path(runners[name])
        fns: Dict[str, Callable[[], Optional[float]]] = {
            'without': without.test
        }
        fns.update({name: r.test for name, r in runners.items()})
        if case.floor:
            fns['floor'] = _floor_fn(without)
            fns['recompute'] = _recompute_fn(without)
        times, cpu = _rounds(fns, repeats, warmup=1)
        paths = {name: _path(r) for name, r in runners.items()}
        samples = len(without.test_dataloader.dataset)
    base = times['without']
    ratio = {
        n: Spread([w / b for w, b in zip(times[n], base)]) for n in runners
    }
    cpu_ratio = {
        n: Spread([w / b for w, b in zip(cpu[n], cpu['without'])])
        for n in runners
    }
    floor = {}
    if case.floor:
        floor = {
            n: Spread(
                [
                    (w - b) / f
                    for w, b, f in zip(times[n], base, times['floor'])
                ]
            )
            for n in runners
            if n in GRADIENT
        }
    extra = {
        n: Spread([w - b for w, b in zip(times[n], base)]) for n in runners
    }
    on = f'{case.methods[0]}, {DESCRIPTORS_ON}'
    off = f'{case.methods[0]}, {DESCRIPTORS_OFF}'
    descriptors = None
    if on in times and off in times:
        # per round: (with descriptors - without) / hook run without them
        descriptors = Spread(
            [(a - b) / b for a, b in zip(times[on], times[off])]
        )
    return dict(
        without=Spread(base),
        extra=extra,
        ratio=ratio,
        cpu_ratio=cpu_ratio,
        floor=floor,
        floor_s=Spread(times.get('floor', [float('nan')])),
        recompute_s=Spread(times.get('recompute', [float('nan')])),
        samples=samples,
        paths=paths,
        descriptors=descriptors,
    )


def _general_path(runner) -> None:
    """Give the runner's hook an engine that never uses a capture."""
    from mmcam_ext import CAMEngine
    from mmcam_ext.utils.model import unwrap_model

    for hook in runner.hooks:
        if hasattr(hook, '_engine'):
            hook._engine = CAMEngine(
                unwrap_model(runner.model), fast_path=False
            )


def _path(runner) -> str:
    """The path the hook's engine took in its last batch."""
    for hook in runner.hooks:
        engine = getattr(hook, '_engine', None)
        if engine is not None:
            return engine.last_path
    return ''


def quick_models() -> Sequence[str]:
    """Models of ``--quick``."""
    return ('deit-tiny-96', 'resnet18-64-gradcam')
