"""The batched CAM engine: one forward/backward shared by all layer methods.

``CAMEngine(model).explain(inputs, methods=[...])`` returns a
:class:`~mmcam_ext.structures.CAMResult`. The model is put in eval mode and
its parameters are frozen for the call, so backward stops at the target
layer; training flags, ``requires_grad`` and ``.grad`` are restored after,
and every torch hook is removed, also on error.
"""

import logging
from contextlib import nullcontext
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from ..errors import InputError, LayoutError, NumericalError
from ..methods.base import (
    BaseCAMMethod,
    ExplainContext,
    FullMapMethod,
    LayerMapMethod,
)
from ..resolvers.base import resolve_targets
from ..structures import CAMResult, TargetSpec
from ..utils.capture import (
    GridCapture,
    LayerCapture,
    eval_mode,
    frozen_parameters,
)
from ..utils.maps import combine_layers, spatial_size
from ..utils.model import classifier_logits, get_module, unwrap_model
from .checks import (
    as_list,
    check_int,
    check_methods,
    check_targets,
    check_topk,
)
from .loop_grad import LoopGradCapture, loop_grad_supported, loop_maps
from .numerics import (
    blank_flags,
    check_gradient,
    check_logits,
    check_maps,
    non_finite,
)
from .pooled_head import PooledCapture, PooledHead

__all__ = ['CAMEngine', 'TargetsLike', 'MethodLike']

TargetsLike = Union[
    None, int, Sequence[int], Sequence[Sequence[int]], torch.Tensor, np.ndarray
]
MethodLike = Union[str, Mapping[str, Any], BaseCAMMethod]

# Test-time augmentation of pytorch-grad-cam's aug_smooth: flips x brightness.
TTA = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


class CAMEngine:
    """Explain batches of a built MMPretrain classifier.

    Args:
        model (nn.Module): An MMPretrain classifier (``ImageClassifier``,
            ``TimmClassifier``...), possibly wrapped in DDP.
        target_layers (Sequence[str], optional): Module names. Defaults to
            None (the resolver's choice).
        num_extra_tokens (int, optional): Override the number of extra
            tokens to drop. Defaults to None.
        autocast (torch.dtype, optional): Run the gradient pass's forward
            under ``torch.autocast`` with this dtype (e.g.
            ``torch.float16`` on CUDA, where it roughly halves time and
            activation memory). Maps are then close to, not equal to, the
            float32 ones; the map arithmetic stays in float32. Defaults to
            None (float32, exact).
        fast_path (bool): Use the pooled-head fast path where it applies
            (see :mod:`mmcam_ext.apis.pooled_head`; same maps, no second
            forward); ``False`` always takes the general path. Defaults to
            True.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Optional[Sequence[str]] = None,
        num_extra_tokens: Optional[int] = None,
        autocast: Optional[torch.dtype] = None,
        fast_path: bool = True,
    ) -> None:
        self.model = unwrap_model(model)
        self.target_layers = as_list(target_layers) or None
        if num_extra_tokens is not None:
            check_int(num_extra_tokens, 'num_extra_tokens', 0)
        self.num_extra_tokens = num_extra_tokens
        self.autocast = autocast
        self.fast_path = fast_path
        self._specs: Dict[Tuple[int, int], TargetSpec] = {}
        self._pooled: Dict[Tuple[int, int], Optional[PooledHead]] = {}

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    def spec_for(self, inputs: torch.Tensor) -> TargetSpec:
        """Resolved target spec for this input size (cached per size)."""
        key = spatial_size(inputs)
        if key not in self._specs:
            with eval_mode(self.model):
                self._specs[key] = resolve_targets(
                    self.model,
                    inputs,
                    self.target_layers,
                    self.num_extra_tokens,
                )
        return self._specs[key]

    def cached_spec(self, size: Tuple[int, int]) -> Optional[TargetSpec]:
        """The target spec resolved for inputs of ``size``, if any (no
        forward)."""
        return self._specs.get((int(size[0]), int(size[1])))

    def explain(
        self,
        inputs: torch.Tensor,
        methods: Sequence[MethodLike] = ('gradcam',),
        targets: TargetsLike = None,
        topk: int = 1,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> CAMResult:
        """CAMs for a preprocessed batch ``(B, 3, H, W)``.

        Args:
            inputs (torch.Tensor): Preprocessed images (after the data
                preprocessor).
            methods (Sequence[str | dict | BaseCAMMethod]): Names
                (case-insensitive, aliases allowed), config dicts
                (``dict(type='rollout', head_fusion='max')``) or instances.
                Defaults to ``('gradcam',)``.
            targets (int | Sequence | torch.Tensor | np.ndarray, optional):
                Classes to explain: ``None`` for the top-``topk``
                predictions, an int for all samples, one int per sample, or
                ``(B, K)`` classes (e.g. ground truth). Defaults to None.
            topk (int): Number of top predictions explained when
                ``targets`` is ``None``. Defaults to 1.
            aug_smooth (bool): Average over flips x brightness (6 passes).
                Defaults to False.
            eigen_smooth (bool): First principal component instead of
                channel sum. Defaults to False.

        Raises:
            MMCamError: A typed error for a wrong argument (``InputError``,
                ``MethodError``, ``TargetError``), a layer that cannot give
                a map (``LayoutError``) or NaN/Inf (``NumericalError``).
        """
        inputs = self._check_inputs(inputs).to(self.device).float()
        built = check_methods(methods)
        names = [m.name for m in built]
        spec = self.spec_for(inputs)
        pooled = self._fast_path(inputs, built, aug_smooth)
        with eval_mode(self.model), frozen_parameters(self.model):
            if pooled is not None:
                maps, signed, logits, tgt = self._pooled_pass(
                    pooled, inputs, built, targets, topk, eigen_smooth
                )
            elif aug_smooth or not any(
                isinstance(m, LayerMapMethod) for m in built
            ):
                logits = self._logits(inputs)
                tgt = self._targets(logits, targets, topk)
                maps, signed = self._explain_all(
                    inputs, built, spec, tgt, logits, aug_smooth, eigen_smooth
                )
            else:
                # The gradient pass's own forward gives the logits the
                # targets are read from: one forward per batch, not two.
                maps, signed, logits, tgt = self._one_pass(
                    inputs,
                    built,
                    spec,
                    partial(self._targets, targets=targets, topk=topk),
                    None,
                    eigen_smooth,
                )
        return self._result(maps, signed, logits, tgt, names, spec)

    @staticmethod
    def _result(maps, signed, logits, tgt, names, spec) -> CAMResult:
        """The :class:`CAMResult` of one batch, on the CPU (maps checked
        for NaN/Inf, blank maps flagged)."""
        check_maps(maps, spec.layers)
        probs = logits.softmax(-1)
        top_scores, top_labels = probs.max(-1)
        return CAMResult(
            maps={n: maps[n].cpu().numpy() for n in names},
            raw_maps={n: signed[n].cpu().numpy() for n in names},
            targets=tgt.cpu().numpy(),
            pred_labels=top_labels.cpu().numpy(),
            pred_scores=top_scores.cpu().numpy(),
            target_scores=probs.gather(1, tgt).cpu().numpy(),
            target_layers=list(spec.layers),
            blank=blank_flags({n: maps[n] for n in names}),
        )

    # ------------------------------------------------ pooled-head path
    def pooled_head(self, inputs: torch.Tensor) -> Optional[PooledHead]:
        """The pooled-head fast path for this input size, or ``None``.

        Detected once per input size (one no-grad forward of one sample,
        see :meth:`PooledHead.detect`) and logged at debug level.

        Args:
            inputs (torch.Tensor): A preprocessed batch ``(B, 3, H, W)``.

        Returns:
            PooledHead | None: The path when the target layer reaches the
            logits only through global average pooling and the head.
        """
        key = spatial_size(inputs)
        if key not in self._pooled:
            spec = self.spec_for(inputs)
            x = inputs[:1].to(self.device).float()
            with eval_mode(self.model), frozen_parameters(self.model):
                path, why = PooledHead.detect(self.model, spec, x)
            print_log(
                f'[mmcam_ext] {spec.layers} at {key[0]}x{key[1]}: '
                + (
                    'pooled-head fast path (one inference forward, a '
                    'backward through the head alone)'
                    if path
                    else f'general path ({why})'
                ),
                logger='current',
                level=logging.DEBUG,
            )
            self._pooled[key] = path
        return self._pooled[key]

    # ------------------------------------------------ in-loop gradients
    def loop_capture(self, inputs: torch.Tensor) -> Optional[LoopGradCapture]:
        """Hooks for the in-loop gradient path on inputs of this size, or
        ``None`` when the model's scores do not come from a head module.

        Args:
            inputs (torch.Tensor): A preprocessed batch (its size picks the
                target spec).

        Returns:
            LoopGradCapture | None: Not started yet.
        """
        if self.autocast is not None or not loop_grad_supported(self.model):
            return None
        return LoopGradCapture(self.model, self.spec_for(inputs))

    def explain_loop(
        self,
        capture: LoopGradCapture,
        methods: Sequence[MethodLike],
        targets: TargetsLike,
        rows: Sequence[int],
        eigen_smooth: bool = False,
    ) -> CAMResult:
        """CAMs from a forward someone else ran with ``capture`` on.

        Args:
            capture (LoopGradCapture): A capture that saw one forward.
            methods (Sequence): Gradient-family methods.
            targets (Sequence | torch.Tensor | np.ndarray): Classes per
                chosen sample, ``(B', K)``.
            rows (Sequence[int]): Positions of the chosen samples.
            eigen_smooth (bool): First principal component instead of the
                channel sum. Defaults to False.

        Returns:
            CAMResult: The maps of the chosen samples.
        """
        built = check_methods(methods)
        layer_methods = [m for m in built if isinstance(m, LayerMapMethod)]
        if len(layer_methods) != len(built):
            raise ValueError(
                'explain_loop takes gradient-family methods only, '
                f'got {[m.name for m in built]}.'
            )
        maps, signed, logits, tgt = loop_maps(
            capture,
            layer_methods,
            partial(self._captured_targets, targets=targets),
            rows,
            eigen_smooth,
            self._check_grad,
        )
        return self._result(
            maps, signed, logits, tgt, [m.name for m in built], capture.spec
        )

    def cached_pooled_head(
        self, size: Optional[Tuple[int, int]] = None
    ) -> Optional[PooledHead]:
        """A fast path already detected, without running anything.

        Args:
            size (tuple[int, int], optional): Input ``(H, W)``. Defaults to
                None (the one path detected for every size seen so far).

        Returns:
            PooledHead | None: The path, or ``None`` when not detected (or
            when sizes seen so far disagree).
        """
        if size is not None:
            return self._pooled.get(tuple(size))  # type: ignore[arg-type]
        heads = list(self._pooled.values())
        if heads and all(h is heads[0] for h in heads):
            return heads[0]
        return None

    def _fast_path(
        self, inputs: torch.Tensor, built, aug_smooth: bool
    ) -> Optional[PooledHead]:
        """The fast path if every method can take it on this input."""
        if aug_smooth or self.autocast is not None or not self.fast_path:
            return None
        if not built or not all(isinstance(m, LayerMapMethod) for m in built):
            return None
        return self.pooled_head(inputs)

    def _pooled_pass(self, pooled, inputs, built, targets, topk, eigen_smooth):
        """One no-grad forward with the capture on, then the head alone."""
        with pooled.capture() as cap, torch.no_grad():
            classifier_logits(self.model, inputs)

        def checked_targets(logits: torch.Tensor) -> torch.Tensor:
            check_logits(self.model, inputs, logits)
            return self._targets(logits, targets, topk)

        return pooled.maps(
            cap, built, checked_targets, eigen_smooth, self._check_grad
        )

    @classmethod
    def _captured_targets(
        cls, logits: torch.Tensor, targets: TargetsLike
    ) -> torch.Tensor:
        """Targets of scores from someone else's forward, refusing NaN/Inf
        (the batch is not at hand to locate it: ``explain`` on it does)."""
        if non_finite(logits):
            raise NumericalError(
                'The class scores of this batch hold NaN/Inf, so every map '
                'would be NaN; CAMEngine.explain on the same batch names '
                'where it first appears.'
            )
        return cls._targets(logits, targets, 1)

    def explain_captured(
        self,
        capture: PooledCapture,
        methods: Sequence[MethodLike],
        targets: TargetsLike,
        rows: Sequence[int],
        eigen_smooth: bool = False,
    ) -> CAMResult:
        """CAMs from a forward someone else ran with ``capture`` on.

        The validation hook starts the capture of :meth:`pooled_head`
        before the loop's own ``val_step`` and explains the chosen samples
        afterwards: no forward of its own.

        Args:
            capture (PooledCapture): A capture that saw one forward.
            methods (Sequence): Gradient-family methods (names or
                instances).
            targets (Sequence | torch.Tensor | np.ndarray): Classes per
                chosen sample, ``(B', K)``.
            rows (Sequence[int]): Positions of the chosen samples in the
                captured batch.
            eigen_smooth (bool): First principal component instead of the
                channel sum. Defaults to False.

        Returns:
            CAMResult: The maps of the chosen samples.
        """
        built = check_methods(methods)
        layer_methods = [m for m in built if isinstance(m, LayerMapMethod)]
        if len(layer_methods) != len(built):
            raise ValueError(
                'explain_captured takes gradient-family methods only, '
                f'got {[m.name for m in built]}.'
            )
        with eval_mode(self.model), frozen_parameters(self.model):
            maps, signed, logits, tgt = capture.head.maps(
                capture,
                layer_methods,
                partial(self._captured_targets, targets=targets),
                eigen_smooth,
                self._check_grad,
                rows,
            )
        spec = TargetSpec([capture.head.layer_name])
        return self._result(
            maps, signed, logits, tgt, [m.name for m in built], spec
        )

    # ------------------------------------------------------------------
    @staticmethod
    def _check_inputs(inputs: torch.Tensor) -> torch.Tensor:
        """A non-empty ``(B, C, H, W)`` tensor, or a clear error."""
        if not isinstance(inputs, torch.Tensor):
            raise InputError(
                'inputs must be a preprocessed (B, C, H, W) tensor, got '
                f"{type(inputs).__name__} (a self-supervised model's data "
                'preprocessor gives lists: CAMs need a classifier).',
                option='inputs',
            )
        if inputs.ndim != 4 or 0 in inputs.shape:
            raise InputError(
                f'Expected a non-empty (B, C, H, W) batch, got '
                f'{tuple(inputs.shape)}.',
                option='inputs',
            )
        return inputs

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = classifier_logits(self.model, inputs).float()
        check_logits(self.model, inputs, logits)
        return logits

    @staticmethod
    def _targets(
        logits: torch.Tensor, targets: TargetsLike, topk: int
    ) -> torch.Tensor:
        bsz, num_classes = logits.shape
        if targets is None:
            topk = check_topk(topk, num_classes)
            return logits.topk(topk, dim=1).indices
        tgt = check_targets(targets, bsz, num_classes)
        assert tgt is not None  # targets is not None
        return tgt.to(logits.device)

    def _explain_all(
        self, inputs, built, spec, tgt, logits, aug_smooth, eigen_smooth
    ):
        """Maps ``(B, K, H, W)`` per method, averaged over TTA if asked."""
        passes = TTA if aug_smooth else [(False, 1.0)]
        acc: Dict[str, torch.Tensor] = {}
        acc_signed: Dict[str, torch.Tensor] = {}
        for flip, factor in passes:
            x = inputs * factor
            x = x.flip(-1) if flip else x
            maps, signed, _, _ = self._one_pass(
                x, built, spec, tgt, logits, eigen_smooth
            )
            for name in maps:
                m, s = maps[name], signed[name]
                if flip:
                    m, s = m.flip(-1), s.flip(-1)
                acc[name] = acc.get(name, 0) + m / len(passes)
                acc_signed[name] = acc_signed.get(name, 0) + s / len(passes)
        return acc, acc_signed

    def _one_pass(self, inputs, built, spec, tgt, logits, eigen_smooth):
        """Maps of every method for one (possibly augmented) input.

        ``tgt`` is a ``(B, K)`` tensor, or a callable ``logits -> tgt`` that
        resolves the targets from the gradient pass's own logits (``logits``
        is then ``None``). Returns maps, signed maps, logits and targets.
        """
        layers = [get_module(self.model, n) for n in spec.layers]
        grid_module = (
            get_module(self.model, spec.layout.grid_source)
            if spec.layout.grid_source
            else None
        )
        size = spatial_size(inputs)
        maps: Dict[str, torch.Tensor] = {}
        signed: Dict[str, torch.Tensor] = {}
        with GridCapture(grid_module) as grid:

            def to_nchw(x):
                return spec.layout.to_nchw(x, grid.grid, size)

            layer_methods = [m for m in built if isinstance(m, LayerMapMethod)]
            if layer_methods:
                maps, signed, logits, tgt = self._layer_methods(
                    inputs,
                    layer_methods,
                    spec,
                    layers,
                    tgt,
                    to_nchw,
                    eigen_smooth,
                )
            ctx = ExplainContext(
                self.model, inputs, spec, layers, tgt, to_nchw, logits
            )
            for method in built:
                if isinstance(method, FullMapMethod):
                    maps[method.name] = self._full_method(
                        method, ctx, layers, eigen_smooth
                    )
                    signed[method.name] = maps[method.name]
        return maps, signed, logits, tgt

    def _layer_methods(
        self,
        inputs,
        methods: List[LayerMapMethod],
        spec,
        layers,
        tgt,
        to_nchw,
        eigen_smooth,
    ):
        """One forward, one backward per target column, all methods.

        ``tgt`` may be a callable resolving the targets from this forward's
        logits (see :meth:`_one_pass`). The graph, activations and gradients
        are dropped when the function returns: only the maps leave it.
        """
        need_grad = any(m.uses_gradients for m in methods)
        size = spatial_size(inputs)
        per_method: Dict[str, List[torch.Tensor]] = {
            m.name: [] for m in methods
        }
        per_signed: Dict[str, List[torch.Tensor]] = {
            m.name: [] for m in methods
        }
        with LayerCapture(layers) as cap, torch.set_grad_enabled(need_grad):
            with self._autocast(inputs.device):
                logits = classifier_logits(self.model, inputs)
            plain_logits = logits.detach().float()
            check_logits(
                self.model,
                inputs,
                plain_logits,
                partial(self._autocast, inputs.device),
            )
            if callable(tgt):
                tgt = tgt(plain_logits)
            missing = [
                n for n, o in zip(spec.layers, cap.outputs) if o is None
            ]
            if missing:
                raise LayoutError(f'Target layer(s) {missing} did not run.')
            outputs = [o for o in cap.outputs if o is not None]
            acts = [to_nchw(o.detach()).float() for o in outputs]
            for name, act in zip(spec.layers, acts):
                if act.shape[0] != inputs.shape[0]:
                    raise LayoutError(
                        f'Target layer {name!r} outputs a batch of '
                        f'{act.shape[0]} for {inputs.shape[0]} images (e.g. '
                        'window attention: batch = windows), so its maps '
                        'cannot be assigned to images. Choose a layer that '
                        'keeps one sample per image.'
                    )
            for k in range(tgt.shape[1]):
                grads: List[Optional[torch.Tensor]] = [None] * len(layers)
                if need_grad:
                    score = logits.gather(1, tgt[:, k : k + 1]).sum()
                    raw_grads = torch.autograd.grad(
                        score,
                        outputs,
                        retain_graph=k + 1 < tgt.shape[1],
                        allow_unused=True,
                    )
                    grads = [
                        self._check_grad(g, n, to_nchw)
                        for g, n in zip(raw_grads, spec.layers)
                    ]
                for m in methods:
                    raw = [
                        m.layer_map(a, g, eigen_smooth)
                        for a, g in zip(acts, grads)
                    ]
                    final, sgn = combine_layers(raw, size)
                    per_method[m.name].append(final)
                    per_signed[m.name].append(sgn)
            del logits, acts, grads, outputs
            cap.clear()
        return (
            {n: torch.stack(v, 1) for n, v in per_method.items()},
            {n: torch.stack(v, 1) for n, v in per_signed.items()},
            plain_logits,
            tgt,
        )

    def _autocast(self, device: torch.device):
        """``torch.autocast`` for the gradient pass, or a no-op."""
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)

    @staticmethod
    def _check_grad(
        grad: Optional[torch.Tensor], name: str, to_nchw
    ) -> torch.Tensor:
        """Fold a gradient; refuse NaN/Inf, or exact zero (a blank map).

        Checked after folding: a ViT's class token may get gradient while
        every patch token gets none.
        """
        grad = to_nchw(grad).float() if grad is not None else None
        if grad is not None:
            check_gradient(grad, name)
        if grad is None or not bool(grad.abs().max() > 0):
            raise LayoutError(
                f'The gradient of the class score at target layer {name!r} is '
                'zero for the whole batch, so every gradient map would be '
                'blank. The layer does not reach the class score (e.g. the '
                'last block of a class-token ViT: choose an earlier layer, or '
                'leave target_layers unset for the resolver default), or '
                'the head is zero (some configs zero-initialise it: load '
                'trained weights).'
            )
        return grad

    def _full_method(
        self, method: FullMapMethod, ctx: ExplainContext, layers, eigen_smooth
    ) -> torch.Tensor:
        gate = layers if method.needs_layer_gate else []
        cols = []
        for k in range(ctx.targets.shape[1]):
            with LayerCapture(gate), torch.enable_grad():
                cols.append(
                    method.explain(ctx, k, eigen_smooth).to(ctx.inputs.device)
                )
        return torch.stack(cols, 1)
