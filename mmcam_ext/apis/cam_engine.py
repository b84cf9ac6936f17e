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
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from ..errors import InputError, LayoutError, NumericalError
from ..methods.attention import AttentionMethod
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
from ..utils.descriptors import evidence_descriptors
from ..utils.maps import spatial_size
from ..utils.model import classifier_logits, get_module, unwrap_model
from .capture_sources import (
    EnginePass,
    LayerMaps,
    LoopCapture,
    check_one_per_image,
    layer_maps,
)
from .checks import (
    as_list,
    check_int,
    check_methods,
    check_targets,
    check_topk,
)
from .loop_attention import (
    LoopAttentionCapture,
    LoopAttentionSource,
    loop_attention_supported,
)
from .loop_grad import LoopGradCapture, loop_grad_supported
from .numerics import blank_flags, check_logits, check_maps, non_finite
from .pooled_head import PooledHead

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
        self._loop: Optional[LoopGradCapture] = None
        self._loop_methods: Tuple[str, ...] = ()
        #: Which path the last :meth:`explain_capture` took (for logs).
        self.last_path = ''

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
        descriptors: bool = False,
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
            descriptors (bool): Also compute evidence descriptors
                (:mod:`mmcam_ext.utils.descriptors`) from the last target
                layer: from each gradient method's own map at that layer,
                from the final map for the other methods (and under
                ``aug_smooth``). Defaults to False.

        Returns:
            CAMResult: The maps (and descriptors when asked for).

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
                out = self._pooled_pass(
                    pooled,
                    inputs,
                    built,
                    partial(self._targets, targets=targets, topk=topk),
                    eigen_smooth,
                    descriptors,
                )
            elif aug_smooth or not any(
                isinstance(m, LayerMapMethod) for m in built
            ):
                logits, last = self._scored(inputs, spec, descriptors)
                tgt = self._targets(logits, targets, topk)
                out = self._explain_all(
                    inputs, built, spec, tgt, logits, aug_smooth, eigen_smooth
                )
                if last is not None:
                    out.descriptors = {
                        n: _descriptors(last, out.maps[n]) for n in names
                    }
            else:
                # The gradient pass's own forward gives the logits the
                # targets are read from: one forward per batch, not two.
                out = self._one_pass(
                    inputs,
                    built,
                    spec,
                    partial(self._targets, targets=targets, topk=topk),
                    None,
                    eigen_smooth,
                    descriptors,
                )
        return self._result(out, names, spec)

    @staticmethod
    def _result(out: LayerMaps, names, spec) -> CAMResult:
        """The :class:`CAMResult` of one batch, on the CPU (maps checked
        for NaN/Inf, blank maps flagged)."""
        maps, signed, logits, tgt = (
            out.maps,
            out.signed,
            out.logits,
            out.targets,
        )
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
            descriptors={
                n: out.descriptors[n].cpu().numpy().astype(np.float32)
                for n in names
                if n in out.descriptors
            },
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

    # ------------------------------------------- captures in a loop
    def prepare_capture(
        self,
        inputs: torch.Tensor,
        methods: Sequence[MethodLike],
        aug_smooth: bool = False,
    ) -> None:
        """Decide, once per run, how a loop's own forward can be captured.

        Detects the pooled-head fast path on ``inputs`` (see
        :meth:`pooled_head`); where it does not apply, sets up in-loop
        gradients (:mod:`mmcam_ext.apis.loop_grad`) for this input size.
        With an attention method among ``methods``, sets up the in-loop
        attention capture (:mod:`mmcam_ext.apis.loop_attention`), which
        also serves the layer-map methods of the same run from the same
        forward and backward.

        Args:
            inputs (torch.Tensor): A preprocessed sample of the run.
            methods (Sequence): The methods the run explains.
            aug_smooth (bool): Whether the run uses ``aug_smooth``.
                Defaults to False.
        """
        self._loop = None
        built = check_methods(methods)
        self._loop_methods = tuple(m.name for m in built)
        if not self._capturable(built, aug_smooth, loop=True):
            return
        attention = [m for m in built if isinstance(m, AttentionMethod)]
        if attention:
            if loop_attention_supported(self.model):
                self._loop = LoopAttentionCapture(
                    self.model,
                    self.spec_for(inputs),
                    layer_methods=len(attention) < len(built),
                    attention_grads=any(m.uses_gradients for m in attention),
                )
            return
        if self.pooled_head(inputs) is None and loop_grad_supported(
            self.model
        ):
            self._loop = LoopGradCapture(self.model, self.spec_for(inputs))

    def loop_capture_for(
        self, methods: Sequence[MethodLike], aug_smooth: bool = False
    ) -> Optional[LoopCapture]:
        """A started capture for the loop's next forward, or ``None``.

        Hand it back to :meth:`explain_capture` after the forward (or call
        its ``stop`` and ``clear``); the caller need not know which kind it
        is.

        Args:
            methods (Sequence): The methods to explain.
            aug_smooth (bool): Whether ``aug_smooth`` is asked for.
                Defaults to False.

        Returns:
            LoopCapture | None: ``None`` where only the general path can
            serve (then :meth:`explain_capture` runs it).
        """
        built = check_methods(methods)
        if not self._capturable(built, aug_smooth, loop=True):
            return None
        capture: Optional[LoopCapture] = self._loop
        if any(isinstance(m, AttentionMethod) for m in built):
            # Built for the methods prepared (which blocks need a graph).
            same = tuple(m.name for m in built) == self._loop_methods
            if not (same and isinstance(capture, LoopAttentionCapture)):
                return None
        elif isinstance(capture, LoopAttentionCapture):
            return None
        else:
            head = self.cached_pooled_head()
            capture = head.capture() if head is not None else capture
        return capture.start() if capture is not None else None

    def explain_capture(
        self,
        capture: Optional[LoopCapture],
        methods: Sequence[MethodLike],
        targets: TargetsLike,
        rows: Sequence[int],
        inputs: Callable[[], torch.Tensor],
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        descriptors: bool = False,
    ) -> CAMResult:
        """CAMs of the chosen samples of a batch someone else ran forward.

        Uses ``capture`` (from :meth:`loop_capture_for`) when it saw a
        whole forward and still fits; otherwise takes the general path on
        ``inputs()[rows]``. :attr:`last_path` says which ran.

        Args:
            capture (LoopCapture, optional): The capture of the forward.
            methods (Sequence): The methods.
            targets (Sequence | torch.Tensor | np.ndarray): Classes per
                chosen sample, ``(B', K)``.
            rows (Sequence[int]): Positions of the chosen samples.
            inputs (Callable): Gives the preprocessed batch, called only
                for the general path.
            aug_smooth (bool): Average over flips x brightness. Defaults to
                False.
            eigen_smooth (bool): First principal component instead of the
                channel sum. Defaults to False.
            descriptors (bool): Also compute evidence descriptors (see
                :meth:`explain`). Defaults to False.

        Returns:
            CAMResult: The maps of the chosen samples.
        """
        built = check_methods(methods)
        if capture is not None:
            capture.stop()
        fits = capture is not None and self._fits(capture, built, aug_smooth)
        if capture is None or not fits:
            if capture is not None:
                capture.clear()
            self.last_path = 'general path (one extra pass per batch)'
            return self.explain(
                inputs()[list(rows)],
                built,
                targets,
                aug_smooth=aug_smooth,
                eigen_smooth=eigen_smooth,
                descriptors=descriptors,
            )
        self.last_path = capture.path
        try:
            with eval_mode(self.model), frozen_parameters(self.model):
                source = capture.source(rows)
                out = self._captured_maps(
                    source,
                    built,
                    partial(self._captured_targets, targets=targets),
                    eigen_smooth,
                    descriptors,
                )
        finally:
            capture.clear()
        return self._result(out, [m.name for m in built], source.spec)

    @staticmethod
    def _captured_maps(
        source, built, targets, eigen_smooth, descriptors
    ) -> LayerMaps:
        """Maps of every method from a captured source: the layer-map
        loop, then the attention methods (sharing its backward)."""
        layer = [m for m in built if isinstance(m, LayerMapMethod)]
        if layer:
            out = layer_maps(source, layer, targets, eigen_smooth, descriptors)
        else:
            out = LayerMaps({}, {}, source.logits, targets(source.logits))
        for m in built:
            if isinstance(m, AttentionMethod):
                assert isinstance(source, LoopAttentionSource)
                maps = source.attention_maps(m, out.targets)
                out.maps[m.name] = out.signed[m.name] = maps
                if descriptors:
                    # the final maps, as the general path's full-map methods
                    assert source.last_acts is not None
                    out.descriptors[m.name] = _descriptors(
                        source.last_acts, maps
                    )
        return out

    def _capturable(
        self, built: Sequence[BaseCAMMethod], aug_smooth, loop: bool = False
    ) -> bool:
        """Whether these methods can take a path without a pass of the
        engine's own (the pooled head, in-loop gradients; with ``loop``
        also the in-loop attention capture)."""
        kinds = (LayerMapMethod, AttentionMethod) if loop else LayerMapMethod
        return (
            not aug_smooth
            and self.autocast is None
            and self.fast_path
            and bool(built)
            and all(isinstance(m, kinds) for m in built)
        )

    def _fits(self, capture: LoopCapture, built, aug_smooth) -> bool:
        """The capture saw a whole forward of a size it was built for
        (another size may need other target layers)."""
        if not capture.complete or not self._capturable(
            built, aug_smooth, loop=True
        ):
            return False
        attention = any(isinstance(m, AttentionMethod) for m in built)
        if attention != isinstance(capture, LoopAttentionCapture):
            return False
        assert capture.input_size is not None
        size = (int(capture.input_size[0]), int(capture.input_size[1]))
        return any(
            capture.built_for is choice
            for choice in (self._pooled.get(size), self._specs.get(size))
            if choice is not None
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
        if not self._capturable(built, aug_smooth):
            return None
        return self.pooled_head(inputs)

    def _pooled_pass(
        self, pooled, inputs, built, targets, eigen_smooth, descriptors
    ) -> LayerMaps:
        """One no-grad forward with the capture on, then the head alone."""
        with pooled.capture() as cap, torch.no_grad():
            classifier_logits(self.model, inputs)

        def checked_targets(logits: torch.Tensor) -> torch.Tensor:
            check_logits(self.model, inputs, logits)
            return targets(logits)

        source = cap.source(range(len(inputs)))
        return layer_maps(
            source, built, checked_targets, eigen_smooth, descriptors
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

    def _scored(
        self, inputs: torch.Tensor, spec: TargetSpec, last_layer: bool
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Logits of a no-grad forward and, if asked, the last target
        layer's folded activations (a forward hook on that forward)."""
        layer = [get_module(self.model, spec.layers[-1])] if last_layer else []
        source = spec.layout.grid_source if last_layer else None
        grid_module = get_module(self.model, source) if source else None
        with LayerCapture(layer) as cap, GridCapture(grid_module) as grid:
            with torch.no_grad():
                logits = classifier_logits(self.model, inputs).float()
        check_logits(self.model, inputs, logits)
        if not last_layer:
            return logits, None
        out = cap.outputs[0]
        if out is None:
            raise LayoutError(f'Target layer {spec.layers[-1]!r} did not run.')
        acts = spec.layout.to_nchw(out, grid.grid, spatial_size(inputs))
        name, batch = spec.layers[-1], int(inputs.shape[0])
        return logits, check_one_per_image(name, acts.float(), batch)

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
    ) -> LayerMaps:
        """Maps ``(B, K, H, W)`` per method, averaged over TTA if asked."""
        passes = TTA if aug_smooth else [(False, 1.0)]
        acc: Dict[str, torch.Tensor] = {}
        acc_signed: Dict[str, torch.Tensor] = {}
        for flip, factor in passes:
            x = inputs * factor
            x = x.flip(-1) if flip else x
            out = self._one_pass(x, built, spec, tgt, logits, eigen_smooth)
            for name in out.maps:
                m, s = out.maps[name], out.signed[name]
                if flip:
                    m, s = m.flip(-1), s.flip(-1)
                acc[name] = acc.get(name, 0) + m / len(passes)
                acc_signed[name] = acc_signed.get(name, 0) + s / len(passes)
        return LayerMaps(acc, acc_signed, logits, tgt)

    def _one_pass(
        self, inputs, built, spec, tgt, logits, eigen_smooth, descriptors=False
    ) -> LayerMaps:
        """Maps of every method for one (possibly augmented) input.

        ``tgt`` is a ``(B, K)`` tensor, or a callable ``logits -> tgt`` that
        resolves the targets from the gradient pass's own logits (``logits``
        is then ``None``). Layer-map methods share one
        :class:`~mmcam_ext.apis.capture_sources.EnginePass`; full-map
        methods run their own passes.
        """
        layers = [get_module(self.model, n) for n in spec.layers]
        grid_module = (
            get_module(self.model, spec.layout.grid_source)
            if spec.layout.grid_source
            else None
        )
        out = LayerMaps({}, {}, logits, tgt)
        last: Optional[torch.Tensor] = None
        with GridCapture(grid_module) as grid:

            def to_nchw(x):
                return spec.layout.to_nchw(x, grid.grid, spatial_size(inputs))

            layer_methods = [m for m in built if isinstance(m, LayerMapMethod)]
            if layer_methods:
                with EnginePass(
                    self.model,
                    inputs,
                    spec,
                    layers,
                    to_nchw,
                    any(m.uses_gradients for m in layer_methods),
                    partial(self._autocast, inputs.device),
                ) as source:
                    out = layer_maps(
                        source,
                        layer_methods,
                        tgt if callable(tgt) else lambda _: tgt,
                        eigen_smooth,
                        descriptors,
                    )
                    last = source.acts[-1]
            ctx = ExplainContext(
                self.model,
                inputs,
                spec,
                layers,
                out.targets,
                to_nchw,
                out.logits,
            )
            for method in built:
                if isinstance(method, FullMapMethod):
                    maps = self._full_method(method, ctx, layers, eigen_smooth)
                    out.maps[method.name] = out.signed[method.name] = maps
                    if descriptors and last is not None:
                        out.descriptors[method.name] = _descriptors(last, maps)
        return out

    def _autocast(self, device: torch.device):
        """``torch.autocast`` for the gradient pass, or a no-op."""
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)

    def _full_method(
        self, method: FullMapMethod, ctx: ExplainContext, layers, eigen_smooth
    ) -> torch.Tensor:
        gate = layers if method.needs_layer_gate else []
        cols: List[torch.Tensor] = []
        for k in range(ctx.targets.shape[1]):
            if k and method.class_agnostic:
                cols.append(cols[0])  # the same map for every class
                continue
            with LayerCapture(gate), torch.enable_grad():
                cols.append(
                    method.explain(ctx, k, eigen_smooth).to(ctx.inputs.device)
                )
        return torch.stack(cols, 1)


def _descriptors(acts: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Evidence descriptors ``(B, K, D)`` of final maps ``(B, K, H, W)``."""
    return torch.stack(
        [evidence_descriptors(acts, maps[:, k]) for k in range(maps.shape[1])],
        1,
    )
