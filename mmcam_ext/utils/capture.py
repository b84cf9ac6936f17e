"""Torch-hook plumbing: capture layer outputs, freeze and restore model state.

Every context manager here removes its hooks and restores what it changed in
``__exit__``, also when the body raises.
"""

from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = [
    'HookSet',
    'frozen_parameters',
    'eval_mode',
    'LayerCapture',
    'GridCapture',
]


class HookSet:
    """The one owner of torch hook handles (and other undo steps).

    Every class that hooks a model registers through a ``HookSet`` and
    calls :meth:`remove` (or leaves its ``with`` block), which undoes
    everything in reverse order, also when the body raised.

    Example:
        >>> with HookSet() as hooks:
        ...     hooks.forward(model.backbone, on_output)
        ...     model(x)
    """

    def __init__(self) -> None:
        self._undo: List[Callable[[], Any]] = []

    def __bool__(self) -> bool:
        return bool(self._undo)

    def forward(self, module: nn.Module, fn: Callable, **kwargs) -> None:
        """Register a forward hook on ``module``.

        Args:
            module (nn.Module): The hooked module.
            fn (Callable): ``fn(module, args, output)``; a returned value
                replaces the output.
            **kwargs: Passed to ``register_forward_hook``.
        """
        self._undo.append(module.register_forward_hook(fn, **kwargs).remove)

    def pre(self, module: nn.Module, fn: Callable, **kwargs) -> None:
        """Register a forward pre-hook on ``module``.

        Args:
            module (nn.Module): The hooked module.
            fn (Callable): ``fn(module, args)`` (``fn(module, args,
                kwargs)`` with ``with_kwargs=True``).
            **kwargs: Passed to ``register_forward_pre_hook``.
        """
        handle = module.register_forward_pre_hook(fn, **kwargs)
        self._undo.append(handle.remove)

    def on_remove(self, undo: Callable[[], Any]) -> None:
        """Run ``undo`` on :meth:`remove` (a patch to restore).

        Args:
            undo (Callable): Called without arguments.
        """
        self._undo.append(undo)

    def remove(self) -> None:
        """Remove every hook and run every undo step, newest first."""
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> 'HookSet':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter for the body.

    Backward then stops at the target layers instead of computing every
    weight gradient (most of pytorch-grad-cam's cost). ``requires_grad`` and
    the ``.grad`` tensors a training loop may hold are restored afterwards
    (pytorch-grad-cam calls ``model.zero_grad()``, which would drop them).
    """
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for p, _, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag, grad in saved:
            p.requires_grad_(flag)
            p.grad = grad


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the body; each module's own ``training`` flag restored."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class LayerCapture:
    """Record target-layer outputs as graph leaves that require grad.

    With all parameters frozen nothing before the first target layer needs a
    graph, so its output is detached and marked ``requires_grad``: backward
    from the class scores ends exactly there. Outputs that already require
    grad (a later target layer, downstream of an earlier one) stay in the
    graph. A clone travels on, so in-place ops
    after the layer (``ReLU(inplace=True)``) do not touch the leaf. If a layer
    runs several times, the last call wins.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self.layers = list(layers)
        self.outputs: List[Optional[torch.Tensor]] = [None] * len(self.layers)
        self._hooks = HookSet()

    def __enter__(self) -> 'LayerCapture':
        for i, layer in enumerate(self.layers):
            self._hooks.forward(layer, self._make_hook(i))
        return self

    def _make_hook(self, index: int):

        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f'Target layer {type(module).__name__} returns '
                    f'{type(output).__name__}, not a tensor; choose one of '
                    'its sub-layers as target layer.'
                )
            if output.requires_grad:
                # An earlier target layer (or an input that needs a
                # gradient) is upstream: cutting the graph here would leave
                # that layer without gradient. Keep the graph; later
                # in-place ops hit the clone.
                self.outputs[index] = output
                return output.clone()
            leaf = output.detach().requires_grad_(torch.is_grad_enabled())
            self.outputs[index] = leaf
            return leaf.clone() if leaf.requires_grad else output

        return hook

    def __exit__(self, *exc) -> None:
        self._hooks.remove()

    def clear(self) -> None:
        """Forget the recorded outputs (hooks stay registered)."""
        self.outputs = [None] * len(self.layers)


class GridCapture:
    """Capture the patch grid ``(h, w)`` a module reports for this input.

    MMPretrain's ``PatchEmbed`` returns ``(tokens, (h, w))`` and Swin stages
    return ``(x, hw, out, out_hw)``: the last pair of ints in the output is
    the grid.
    """

    def __init__(self, module: Optional[nn.Module]) -> None:
        self.module = module
        self.grid: Optional[Tuple[int, int]] = None
        self._hooks = HookSet()

    def __enter__(self) -> 'GridCapture':
        if self.module is not None and not self._hooks:
            self._hooks.forward(self.module, self._hook)
        return self

    def _hook(self, module, args, output) -> None:
        grid = _last_int_pair(output)
        if (
            grid is None
            and isinstance(output, torch.Tensor)
            and output.ndim == 4
        ):
            grid = (int(output.shape[2]), int(output.shape[3]))
        if grid is not None:
            self.grid = grid

    def __exit__(self, *exc) -> None:
        self._hooks.remove()


def _last_int_pair(output) -> Optional[Tuple[int, int]]:
    if isinstance(output, (tuple, list)):
        if len(output) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in output
        ):
            return int(output[0]), int(output[1])
        for item in reversed(output):
            pair = _last_int_pair(item)
            if pair is not None:
                return pair
    return None
