"""Pooled-head fast path: gradient CAMs from one inference forward.

If a layer's output ``A`` reaches the logits only through global average
pooling ``p = mean_ij A[:, :, i, j]`` and a head, then
``dy/dA[k, i, j] = dy/dp[k] / (h * w)`` at every position. Every gradient
method at that layer (GradCAM, GradCAM++, XGradCAM, HiResCAM,
GradCAMElementWise, LayerCAM, EigenCAM, EigenGradCAM) then follows from
``A``, captured by a forward hook during an ordinary no-grad forward, and
``dy/dp``, a backward through the head alone. No second forward, no graph
through the backbone.

Whether a model is such a case is decided from its structure and one traced
forward, never from a list of names (:meth:`PooledHead.detect`): the target
layer's output must *be* the backbone's last output (the same tensor, so no
operation runs between them), the neck must return its spatial mean (checked
by value and by its Jacobian: the neck's gradient must be uniform over
positions), and the head applied to the neck's features must give the
model's own logits. ConvNeXt, whose final norm runs inside the backbone after
its pooling, class-token ViTs, inner layers and ``TimmClassifier`` models
fail one of these checks and take the general path.
"""

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..structures import TargetSpec
from ..utils.capture import HookSet, frozen_parameters
from ..utils.model import classifier_logits, get_module, takes_mode
from .capture_sources import ActivationSource, LoopCapture

__all__ = ['PooledHead', 'PooledCapture', 'PooledSource']


class PooledCapture(LoopCapture):
    """Forward hooks that keep the target output, the neck's features and
    the network input size of one forward; they change nothing.

    Use as a context manager, or :meth:`start` / :meth:`stop` around a
    forward that someone else runs (the val loop's own ``val_step``).

    Args:
        head (PooledHead): The detected fast path.
    """

    path = 'pooled-head fast path (no extra forward)'

    def __init__(self, head: 'PooledHead') -> None:
        self.head = head
        self.built_for = head
        self.acts: Optional[torch.Tensor] = None
        self.feats: Optional[Tuple[torch.Tensor, ...]] = None
        self.input_size: Optional[Tuple[int, int]] = None
        self._hooks = HookSet()

    def start(self) -> 'PooledCapture':
        """Register the hooks (idempotent)."""
        if not self._hooks:
            self.clear()
            self._hooks.forward(self.head.layer, self._on_layer)
            self._hooks.forward(self.head.neck, self._on_neck)
            self._hooks.pre(self.head.backbone, self._on_input)
        return self

    def stop(self) -> None:
        """Remove the hooks; the captured tensors stay readable."""
        self._hooks.remove()

    def clear(self) -> None:
        """Drop the captured tensors."""
        self.acts = self.feats = self.input_size = None

    def __enter__(self) -> 'PooledCapture':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def complete(self) -> bool:
        """Whether the last forward gave everything the fast path needs."""
        return (
            self.acts is not None
            and self.feats is not None
            and self.input_size is not None
            and self.acts.shape[0] == self.feats[-1].shape[0]
        )

    def source(self, rows: Sequence[int]) -> 'PooledSource':
        """The captured samples ``rows`` (see :class:`PooledSource`).

        Args:
            rows (Sequence[int]): Positions in the captured batch.

        Returns:
            PooledSource: Their activations, scores and gradients.
        """
        return PooledSource(self, rows)

    def _on_layer(self, module, args, output) -> None:
        self.acts = output.detach() if torch.is_tensor(output) else None

    def _on_neck(self, module, args, output) -> None:
        self.feats = tuple(f.detach() for f in _as_tuple(output))

    def _on_input(self, module, args) -> None:
        x = args[0] if args else None
        if torch.is_tensor(x) and x.ndim == 4:
            self.input_size = (int(x.shape[-2]), int(x.shape[-1]))


class PooledSource(ActivationSource):
    """Activations of a pooled capture; gradients from the head alone.

    ``dy/dA = dy/dp / (h * w)`` at every position (see the module
    docstring): one backward through the head per target column.

    Args:
        capture (PooledCapture): A complete capture.
        rows (Sequence[int]): Samples of the captured batch to explain.
    """

    def __init__(self, capture: PooledCapture, rows: Sequence[int]) -> None:
        assert capture.complete, 'the capture saw no complete forward'
        assert capture.acts is not None and capture.feats is not None
        assert capture.input_size is not None
        rows = list(rows)
        self.spec = TargetSpec([capture.head.layer_name])
        self.input_size = capture.input_size
        self.acts = [capture.acts[rows].float()]
        self._scores, self._pooled = capture.head.head_logits(
            capture.feats, rows
        )
        self.logits = self._scores.detach().float()

    def grads(self, targets, k, last):
        """See :meth:`ActivationSource.grads`."""
        acts = self.acts[0]
        with torch.enable_grad():  # also inside the loop's no_grad
            score = self._scores.gather(1, targets[:, k : k + 1]).sum()
            (g,) = torch.autograd.grad(
                score, self._pooled, retain_graph=not last
            )
        area = acts.shape[2] * acts.shape[3]
        return [(g / area)[..., None, None].expand_as(acts)]


class PooledHead:
    """A target layer that reaches the logits only through the pooled head.

    Build it with :meth:`detect`; it holds the modules the fast path hooks.

    Args:
        model (nn.Module): The classifier (unwrapped).
        layer_name (str): The target layer's module name.
    """

    def __init__(self, model: nn.Module, layer_name: str) -> None:
        self.model = model
        self.layer_name = layer_name
        self.layer = get_module(model, layer_name)
        self.backbone = _module(model, 'backbone')
        self.neck = _module(model, 'neck')
        self.head = _module(model, 'head')

    # ------------------------------------------------------------ detect
    @classmethod
    def detect(
        cls, model: nn.Module, spec: TargetSpec, inputs: torch.Tensor
    ) -> Tuple[Optional['PooledHead'], str]:
        """The fast path for ``spec`` on ``model``, or ``None`` and why not.

        Runs one no-grad forward of ``inputs[:1]`` (the caller sets eval
        mode) and checks the structure described in the module docstring.

        Args:
            model (nn.Module): The classifier (unwrapped, eval mode).
            spec (TargetSpec): The resolved target layers.
            inputs (torch.Tensor): A preprocessed batch; one sample is used.

        Returns:
            tuple[PooledHead | None, str]: The path (or ``None``) and a
            one-line reason for the log.
        """
        if len(spec.layers) != 1 or spec.layout.kind != 'nchw':
            return None, 'needs one NCHW target layer'
        parts = [getattr(model, n, None) for n in ('backbone', 'neck', 'head')]
        if not all(isinstance(p, nn.Module) for p in parts):
            return None, 'the model is not backbone -> neck -> head'
        if not takes_mode(model):
            return None, "the model's forward takes no mode argument"
        head = cls(model, spec.layers[0])
        with torch.no_grad():
            trace = _Trace(head).run(inputs[:1])
        problem = trace.problem()
        if problem is None:
            problem = head._check_neck_and_head(trace)
        return (None, problem) if problem else (head, 'pooled head')

    def _check_neck_and_head(self, trace: '_Trace') -> Optional[str]:
        """Neck = spatial mean of the layer (value and Jacobian); head of
        the neck's features = the model's logits."""
        acts, feats = trace.acts, trace.neck_out
        assert acts is not None and feats is not None
        pooled = feats[-1]
        if pooled.shape != acts.shape[:2]:
            return f'the neck returns {tuple(pooled.shape)}, not (B, C)'
        if not torch.allclose(pooled, acts.mean((2, 3)), rtol=1e-4, atol=1e-6):
            return 'the neck output is not the spatial mean of the layer'
        leaf = acts.detach().clone().requires_grad_(True)
        backbone_out = tuple(trace.backbone_out[:-1]) + (leaf,)
        probe = torch.randn_like(pooled)
        with torch.enable_grad(), frozen_parameters(self.neck):
            out = _as_tuple(self.neck(backbone_out))[-1]
            (grad,) = torch.autograd.grad((out * probe).sum(), leaf)
        uniform = (probe / (acts.shape[2] * acts.shape[3]))[..., None, None]
        if not torch.allclose(
            grad, uniform.expand_as(grad), rtol=1e-4, atol=1e-9
        ):
            return "the neck's gradient is not uniform over positions"
        logits = self.head_logits(feats, list(range(len(pooled))))[0]
        if trace.logits is None or not torch.allclose(
            logits.detach(), trace.logits, rtol=1e-4, atol=1e-5
        ):
            return 'the head of the neck features is not the model output'
        return None

    # ---------------------------------------------------------- compute
    def capture(self) -> PooledCapture:
        """Hooks for one forward, see :class:`PooledCapture`."""
        return PooledCapture(self)

    def head_logits(
        self, feats: Sequence[torch.Tensor], rows: Sequence[int]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits re-derived from the pooled features, with grad.

        Args:
            feats (Sequence[torch.Tensor]): The neck's features.
            rows (Sequence[int]): Samples of the batch to keep.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: ``(B', num_classes)``
            logits and the pooled leaf ``p`` they were computed from.
        """
        pooled = feats[-1][list(rows)].detach().float().requires_grad_(True)
        head_in = tuple(f[list(rows)] for f in feats[:-1]) + (pooled,)
        with torch.enable_grad(), frozen_parameters(self.head):
            logits = self.head(head_in)
        if isinstance(logits, (tuple, list)):
            logits = sum(t for t in logits if torch.is_tensor(t))
        return logits, pooled


class _Trace:
    """One forward with hooks on the target layer, backbone, neck, head."""

    def __init__(self, head: PooledHead) -> None:
        self.path = head
        self.acts: Optional[torch.Tensor] = None
        self.backbone_out: Tuple[Any, ...] = ()
        self.neck_in: Any = None
        self.neck_out: Optional[Tuple[torch.Tensor, ...]] = None
        self.head_in: Any = None
        self.head_out: Any = None
        self.logits: Optional[torch.Tensor] = None
        self.calls: Dict[str, int] = dict(layer=0, backbone=0, neck=0, head=0)

    def run(self, x: torch.Tensor) -> '_Trace':
        p = self.path
        hooks = [
            (p.layer, 'layer'),
            (p.backbone, 'backbone'),
            (p.neck, 'neck'),
            (p.head, 'head'),
        ]
        with HookSet() as handles:
            for module, name in hooks:
                handles.forward(module, self._hook(name))
            out = classifier_logits(p.model, x)
        self.logits = out.detach().float()
        self.output_is_head = out is self.head_out
        return self

    def _hook(self, name: str):
        def hook(module, args, output):
            self.calls[name] += 1
            first = args[0] if args else None
            if name == 'layer':
                self.acts = output if torch.is_tensor(output) else None
            elif name == 'backbone':
                self.backbone_out = _as_tuple(output)
            elif name == 'neck':
                self.neck_in, self.neck_out = first, _as_tuple(output)
            else:
                self.head_in, self.head_out = first, output

        return hook

    def problem(self) -> Optional[str]:
        """Why the structure is not layer -> backbone output -> neck ->
        head -> logits, or ``None``."""
        if any(n != 1 for n in self.calls.values()):
            return f'modules ran {self.calls} times, expected once each'
        if self.acts is None or self.acts.ndim != 4:
            return 'the target layer output is not a (B, C, H, W) tensor'
        if not self.backbone_out or self.backbone_out[-1] is not self.acts:
            return "the target layer output is not the backbone's last output"
        if not _same(_as_tuple(self.neck_in), self.backbone_out):
            return 'the neck does not take the backbone outputs'
        if self.neck_out is None or not all(
            torch.is_tensor(f) for f in self.neck_out
        ):
            return 'the neck does not return tensors'
        if not _same(_as_tuple(self.head_in), self.neck_out):
            return 'the head does not take the neck outputs'
        if not self.output_is_head:
            return "the model's output is not the head's output"
        return None


def _module(model: nn.Module, name: str) -> nn.Module:
    sub = getattr(model, name)
    assert isinstance(sub, nn.Module), name
    return sub


def _as_tuple(value: Any) -> Tuple[Any, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def _same(a: Tuple[Any, ...], b: Tuple[Any, ...]) -> bool:
    """The same objects in the same order (identity, not value)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))
