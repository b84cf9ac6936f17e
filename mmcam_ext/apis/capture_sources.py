"""One way from activations to maps: the capture interface.

Gradient-family maps need, for one batch, the target layers' activations
``A`` (folded to ``(B, C, h, w)``), the gradient ``G`` of the class score
of each target column at those layers, and the class scores. Three places
can give them:

* the engine's own pass (:class:`EnginePass`): one forward with the target
  layers' outputs as graph leaves, one backward per target column;
* the pooled head (:class:`~mmcam_ext.apis.pooled_head.PooledCapture`):
  ``A`` from someone else's no-grad forward, ``G`` from a backward through
  the head alone;
* in-loop gradients (:class:`~mmcam_ext.apis.loop_grad.LoopGradCapture`):
  ``A`` and the graph of the network's tail from the validation loop's own
  forward.

Each is an :class:`ActivationSource`; :func:`layer_maps` is the one loop
that turns any of them into maps (``for k in targets: grads -> for m in
methods: m.layer_map -> combine_layers``). A capture hooked into someone
else's forward is a :class:`LoopCapture`: started before that forward,
stopped after it, and asked for its source.
"""

from abc import ABC, abstractmethod
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ContextManager,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
from torch import nn

from ..errors import LayoutError
from ..methods.base import LayerMapMethod
from ..structures import TargetSpec
from ..utils.capture import LayerCapture
from ..utils.descriptors import evidence_descriptors
from ..utils.maps import combine_layers
from ..utils.model import classifier_logits
from .numerics import check_gradient, check_logits

__all__ = [
    'ActivationSource',
    'LoopCapture',
    'EnginePass',
    'LayerMaps',
    'layer_maps',
    'checked_gradient',
    'check_one_per_image',
]

Maps = Dict[str, torch.Tensor]
Fold = Callable[[torch.Tensor], torch.Tensor]
TargetsFn = Callable[[torch.Tensor], torch.Tensor]


class ActivationSource(ABC):
    """Activations, class scores and gradients of one explained batch.

    Attributes:
        spec (TargetSpec): The target layers and their layout.
        input_size (tuple[int, int]): The network input ``(H, W)``.
        acts (list[torch.Tensor]): Folded float activations ``(B, C, h,
            w)``, one per target layer, of the explained samples.
        logits (torch.Tensor): Their float class scores ``(B, classes)``
            (detached).
    """

    spec: TargetSpec
    input_size: Tuple[int, int]
    acts: List[torch.Tensor]
    logits: torch.Tensor

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """A raw gradient of :meth:`grads` folded like :attr:`acts`.

        Args:
            x (torch.Tensor): A gradient as the layer laid it out.

        Returns:
            torch.Tensor: ``(B, C, h, w)``.
        """
        return x

    @abstractmethod
    def grads(
        self, targets: torch.Tensor, k: int, last: bool
    ) -> Sequence[Optional[torch.Tensor]]:
        """Raw gradients of the column-``k`` class scores, one per layer.

        Args:
            targets (torch.Tensor): ``(B, K)`` classes.
            k (int): The target column.
            last (bool): The last column: the graph may be freed.

        Returns:
            list[torch.Tensor | None]: Unfolded (see :meth:`fold`);
            ``None`` where the layer does not reach the score.
        """

    def release(self) -> None:
        """Drop activations and graph (the maps are computed): the
        owner calls it once it needs neither."""
        self.acts = []


class LoopCapture(ABC):
    """Hooks in a forward someone else runs (the validation loop's).

    :meth:`start` before that forward, :meth:`stop` after it, then
    :meth:`source` for the samples to explain and :meth:`clear` at the end.

    Attributes:
        built_for (object): What the capture was built for (the pooled
            head, the target spec); the engine uses it only when it is
            still its choice for :attr:`input_size`.
        input_size (tuple[int, int] | None): The input size the forward
            saw.
        path (str): Which path it serves, for logs.
    """

    built_for: Any
    path: str = ''
    input_size: Optional[Tuple[int, int]]

    @abstractmethod
    def start(self) -> 'LoopCapture':
        """Register the hooks (idempotent)."""

    @abstractmethod
    def stop(self) -> None:
        """Remove the hooks; what was captured stays readable."""

    @property
    @abstractmethod
    def complete(self) -> bool:
        """Whether the forward gave everything the source needs."""

    @abstractmethod
    def source(self, rows: Sequence[int]) -> ActivationSource:
        """The captured samples ``rows`` as a source.

        Args:
            rows (Sequence[int]): Positions in the captured batch.

        Returns:
            ActivationSource: Their activations, scores and gradients.
        """

    @abstractmethod
    def clear(self) -> None:
        """Drop what was captured (and with it any graph)."""


@dataclass
class LayerMaps:
    """Output of :func:`layer_maps`.

    Args:
        maps (dict): Method name -> ``(B, K, H, W)`` maps in ``[0, 1]``.
        signed (dict): Method name -> ``(B, K, H, W)`` signed maps.
        logits (torch.Tensor): The source's class scores.
        targets (torch.Tensor): ``(B, K)`` explained classes.
        descriptors (dict): Method name -> ``(B, K, D)`` evidence
            descriptors; empty unless asked for. Defaults to ``{}``.
    """

    maps: Maps
    signed: Maps
    logits: torch.Tensor
    targets: torch.Tensor
    descriptors: Maps = field(default_factory=dict)


def layer_maps(
    source: ActivationSource,
    methods: Sequence[LayerMapMethod],
    targets: TargetsFn,
    eigen_smooth: bool = False,
    descriptors: bool = False,
) -> LayerMaps:
    """The one layer-map loop: maps of every method from any source.

    Per target column one backward (skipped when no method uses
    gradients), checked by :func:`checked_gradient`; per method one
    ``layer_map`` per layer, combined by
    :func:`~mmcam_ext.utils.maps.combine_layers`. A ``class_agnostic``
    method is computed for the first column and repeated.

    Args:
        source (ActivationSource): Activations, scores and gradients.
        methods (Sequence[LayerMapMethod]): The methods.
        targets (Callable): ``logits -> (B, K)`` classes to explain.
        eigen_smooth (bool): First principal component instead of the
            channel sum. Defaults to False.
        descriptors (bool): Also compute evidence descriptors from the
            last target layer's activations and each method's map at that
            layer. Defaults to False.

    Returns:
        LayerMaps: Maps, signed maps, scores, targets (and descriptors).
    """
    tgt = targets(source.logits)
    need_grad = any(m.uses_gradients for m in methods)
    cols: Dict[str, List[Tuple[torch.Tensor, ...]]] = {
        m.name: [] for m in methods
    }
    num = tgt.shape[1]
    for k in range(num):
        grads: List[Optional[torch.Tensor]] = [None] * len(source.acts)
        if need_grad:
            raw_grads = source.grads(tgt, k, last=k + 1 == num)
            grads = [
                checked_gradient(g, n, source.fold)
                for g, n in zip(raw_grads, source.spec.layers)
            ]
        for m in methods:
            if k and m.class_agnostic:
                cols[m.name].append(cols[m.name][0])
                continue
            raw = [
                m.layer_map(a, g, eigen_smooth)
                for a, g in zip(source.acts, grads)
            ]
            col: Tuple[torch.Tensor, ...] = combine_layers(
                raw, source.input_size
            )
            if descriptors:
                col += (evidence_descriptors(source.acts[-1], raw[-1]),)
            cols[m.name].append(col)
    out = LayerMaps({}, {}, source.logits, tgt)
    for name, per_k in cols.items():
        out.maps[name] = torch.stack([c[0] for c in per_k], 1)
        out.signed[name] = torch.stack([c[1] for c in per_k], 1)
        if descriptors:
            out.descriptors[name] = torch.stack([c[2] for c in per_k], 1)
    return out


def checked_gradient(
    grad: Optional[torch.Tensor], name: str, fold: Fold
) -> torch.Tensor:
    """Fold a gradient; refuse NaN/Inf, or exact zero (a blank map).

    Checked after folding: a ViT's class token may get gradient while
    every patch token gets none.

    Args:
        grad (torch.Tensor, optional): The raw gradient at layer ``name``.
        name (str): The layer, for the message.
        fold (Callable): Folds it to ``(B, C, h, w)``.

    Returns:
        torch.Tensor: The folded float gradient.

    Raises:
        NumericalError: For NaN/Inf.
        LayoutError: For a gradient that is zero for the whole batch.
    """
    grad = fold(grad).float() if grad is not None else None
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


def check_one_per_image(
    name: str, output: torch.Tensor, batch: int
) -> torch.Tensor:
    """Refuse a target layer whose batch is not one row per image.

    Args:
        name (str): The layer.
        output (torch.Tensor): Its output.
        batch (int): Images in the batch.

    Returns:
        torch.Tensor: ``output``.

    Raises:
        LayoutError: E.g. window attention (batch = windows).
    """
    if output.shape[0] != batch:
        raise LayoutError(
            f'Target layer {name!r} outputs a batch of {output.shape[0]} '
            f'for {batch} images (e.g. window attention: batch = windows), '
            'so its maps cannot be assigned to images. Choose a layer that '
            'keeps one sample per image.'
        )
    return output


class EnginePass(ActivationSource):
    """The engine's own pass: one forward with the target layers' outputs
    as graph leaves (see :class:`~mmcam_ext.utils.capture.LayerCapture`).

    A context manager: the forward runs on entry; the hooks are removed
    and the graph dropped on exit.

    Args:
        model (nn.Module): The classifier (eval mode, parameters frozen).
        inputs (torch.Tensor): The preprocessed batch.
        spec (TargetSpec): Target layers and layout.
        layers (list[nn.Module]): The target modules.
        fold (Callable): Folds a layer output to ``(B, C, h, w)``.
        need_grad (bool): Whether gradients will be asked for.
        autocast (Callable, optional): A context factory for the forward
            (``torch.autocast``). Defaults to None.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        spec: TargetSpec,
        layers: Sequence[nn.Module],
        fold: Fold,
        need_grad: bool,
        autocast: Optional[Callable[[], ContextManager]] = None,
    ) -> None:
        self.model, self.inputs, self.spec = model, inputs, spec
        self.layers, self._fold, self.need_grad = list(layers), fold, need_grad
        self.autocast = autocast or nullcontext
        self.input_size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        self._stack = ExitStack()
        self._scores: Optional[torch.Tensor] = None
        self._outputs: List[torch.Tensor] = []
        self._cap: Optional[LayerCapture] = None

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """See :meth:`ActivationSource.fold`."""
        return self._fold(x)

    def __enter__(self) -> 'EnginePass':
        with ExitStack() as stack:
            cap = stack.enter_context(LayerCapture(self.layers))
            stack.enter_context(torch.set_grad_enabled(self.need_grad))
            with self.autocast():
                self._scores = classifier_logits(self.model, self.inputs)
            self.logits = self._scores.detach().float()
            check_logits(self.model, self.inputs, self.logits, self.autocast)
            missing = [
                n for n, o in zip(self.spec.layers, cap.outputs) if o is None
            ]
            if missing:
                raise LayoutError(f'Target layer(s) {missing} did not run.')
            self._outputs = [o for o in cap.outputs if o is not None]
            batch = int(self.inputs.shape[0])
            self.acts = [
                check_one_per_image(n, self._fold(o.detach()).float(), batch)
                for n, o in zip(self.spec.layers, self._outputs)
            ]
            self._cap = cap
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._stack.close()

    def grads(self, targets, k, last):
        """See :meth:`ActivationSource.grads`."""
        assert self._scores is not None, 'use EnginePass as a context'
        score = self._scores.gather(1, targets[:, k : k + 1]).sum()
        return torch.autograd.grad(
            score, self._outputs, retain_graph=not last, allow_unused=True
        )

    def release(self) -> None:
        """See :meth:`ActivationSource.release`."""
        self._scores, self._outputs, self.acts = None, [], []
        if self._cap is not None:
            self._cap.clear()
