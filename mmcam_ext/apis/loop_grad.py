"""In-loop gradient path: gradient CAMs from someone else's forward.

The validation loop runs its forward under ``torch.no_grad()``. For a
target layer that is *not* followed by global pooling alone (a class-token
ViT's ``ln1``, an inner stage), the gradient of the class score needs the
network *after* the layer to run with grad. :class:`LoopGradCapture` turns
grad mode on exactly there, inside the loop's own forward: the layer's
output becomes a graph leaf, the rest of the network builds its graph from
it, and when the head returns its scores they are kept (with their graph)
and handed back to the loop *detached*, with grad mode switched off again.
The loop then computes its predictions and metrics as always (the forward
is the same computation; the hook tests check metrics bit for bit), and
the hook backpropagates from the kept scores to the leaf afterwards: the
cost of the CAMs is that of the network's tail, not of a second forward.

Only models whose scores come out of a ``head`` module (MMPretrain's
``ImageClassifier``) are served; if the head's output is not seen (a head
whose ``predict`` does not call its ``forward``), grad mode is switched off
at the end of the model's forward and the capture reports itself
incomplete, so the caller takes the general path.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..methods.base import LayerMapMethod
from ..structures import TargetSpec
from ..utils.capture import GridCapture
from ..utils.maps import combine_layers
from ..utils.model import feature_root, get_module, takes_mode

__all__ = ['LoopGradCapture', 'loop_grad_supported', 'loop_maps']

Maps = Dict[str, torch.Tensor]


def loop_grad_supported(model: nn.Module) -> bool:
    """Whether ``model``'s scores come from a ``head`` module's forward.

    Args:
        model (nn.Module): The classifier (unwrapped).

    Returns:
        bool: ``True`` for MMPretrain ``ImageClassifier``-like models.
    """
    return (
        isinstance(getattr(model, 'head', None), nn.Module)
        and isinstance(getattr(model, 'backbone', None), nn.Module)
        and takes_mode(model)
    )


class LoopGradCapture:
    """Hooks that make one forward also build the graph from the target
    layers to the head's scores (see the module docstring).

    Use :meth:`start` before the loop's forward and :meth:`stop` after it;
    then read :attr:`outputs` (graph leaves or graph tensors),
    :attr:`logits` (with graph), :attr:`grid` and :attr:`input_size`, and
    call :meth:`clear` once the gradients are taken.

    Args:
        model (nn.Module): The classifier (unwrapped); see
            :func:`loop_grad_supported`.
        spec (TargetSpec): Target layers and layout.
    """

    def __init__(self, model: nn.Module, spec: TargetSpec) -> None:
        self.model = model
        self.spec = spec
        self.layers = [get_module(model, n) for n in spec.layers]
        head = model.head
        assert isinstance(head, nn.Module), 'see loop_grad_supported'
        self.head = head
        self.root = feature_root(model)[1]
        source = spec.layout.grid_source
        self._grid = GridCapture(get_module(model, source) if source else None)
        self.outputs: List[Optional[torch.Tensor]] = [None] * len(self.layers)
        self.logits: Optional[torch.Tensor] = None
        self.input_size: Optional[Tuple[int, int]] = None
        self._restore: Optional[bool] = None
        self._handles: List[Any] = []

    @property
    def grid(self) -> Optional[Tuple[int, int]]:
        """Patch grid reported during the forward, if any."""
        return self._grid.grid

    @property
    def complete(self) -> bool:
        """Whether the last forward gave leaves and scores with a graph."""
        return (
            all(o is not None for o in self.outputs)
            and self.logits is not None
            and self.logits.requires_grad
            and self.input_size is not None
        )

    def start(self) -> 'LoopGradCapture':
        """Register the hooks (idempotent)."""
        if self._handles:
            return self
        self.clear()
        self._grid.grid = None
        self._grid.__enter__()
        self._handles = [
            layer.register_forward_hook(self._layer_hook(i))
            for i, layer in enumerate(self.layers)
        ]
        self._handles += [
            self.head.register_forward_hook(self._on_head),
            self.root.register_forward_pre_hook(self._on_input),
            self.model.register_forward_hook(self._on_model),
        ]
        return self

    def stop(self) -> None:
        """Remove the hooks and make sure grad mode is as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._grid.__exit__()
        self._switch_back()

    def clear(self) -> None:
        """Drop the captured tensors (and with them the graph)."""
        self.outputs = [None] * len(self.layers)
        self.logits = None
        self.input_size = None

    # ------------------------------------------------------------ hooks
    def _layer_hook(self, index: int):
        def hook(module, args, output):
            if not torch.is_tensor(output):
                return None
            if output.requires_grad:
                # Downstream of an earlier target layer: keep the graph.
                self.outputs[index] = output
                return output.clone()
            if self._restore is None:
                self._restore = torch.is_grad_enabled()
                torch.set_grad_enabled(True)
            leaf = output.detach().requires_grad_(True)
            self.outputs[index] = leaf
            # A clone travels on, so in-place ops downstream (an in-place
            # ReLU, a residual +=) never touch the leaf.
            return leaf.clone()

        return hook

    def _on_head(self, module, args, output):
        if self._restore is None or not torch.is_tensor(output):
            return None
        self.logits = output
        self._switch_back()
        return output.detach()

    def _on_input(self, module, args) -> None:
        x = args[0] if args else None
        if torch.is_tensor(x) and x.ndim == 4:
            self.input_size = (int(x.shape[-2]), int(x.shape[-1]))

    def _on_model(self, module, args, output) -> None:
        self._switch_back()

    def _switch_back(self) -> None:
        if self._restore is not None:
            torch.set_grad_enabled(self._restore)
            self._restore = None

    # -------------------------------------------------------- gradients
    def grads(
        self, rows: Sequence[int], targets: torch.Tensor, k: int, last: bool
    ) -> List[Optional[torch.Tensor]]:
        """Gradients of the chosen rows' target-``k`` scores at each layer.

        Args:
            rows (Sequence[int]): Samples of the batch explained.
            targets (torch.Tensor): ``(len(rows), K)`` classes.
            k (int): Target column.
            last (bool): Free the graph afterwards.

        Returns:
            list[torch.Tensor | None]: One full-batch gradient per layer.
        """
        assert self.logits is not None
        index = torch.as_tensor(list(rows), device=self.logits.device)
        with torch.enable_grad():
            picked = self.logits.float().index_select(0, index)
            score = picked.gather(1, targets[:, k : k + 1]).sum()
            return list(
                torch.autograd.grad(
                    score,
                    [o for o in self.outputs if o is not None],
                    retain_graph=not last,
                    allow_unused=True,
                )
            )


def loop_maps(
    capture: LoopGradCapture,
    methods: Sequence[LayerMapMethod],
    targets: Callable[[torch.Tensor], torch.Tensor],
    rows: Sequence[int],
    eigen_smooth: bool,
    check_grad: Callable[..., torch.Tensor],
) -> Tuple[Maps, Maps, torch.Tensor, torch.Tensor]:
    """Maps of every method for the chosen rows of a captured forward.

    Args:
        capture (LoopGradCapture): A complete capture.
        methods (Sequence[LayerMapMethod]): Gradient-family methods.
        targets (Callable): ``logits -> (len(rows), K)`` classes.
        rows (Sequence[int]): Samples of the batch to explain.
        eigen_smooth (bool): First principal component smoothing.
        check_grad (Callable): The engine's gradient check.

    Returns:
        tuple: ``(maps, signed, logits, targets)`` as the engine returns
        them, for the chosen rows.
    """
    assert capture.complete and capture.logits is not None
    assert capture.input_size is not None
    rows = list(rows)
    size, grid, layout = capture.input_size, capture.grid, capture.spec.layout
    batch = capture.logits.shape[0]

    def fold(x: torch.Tensor) -> torch.Tensor:
        return layout.to_nchw(x, grid, size)[rows]

    outputs = [o for o in capture.outputs if o is not None]
    acts = []
    for name, out in zip(capture.spec.layers, outputs):
        if out.shape[0] != batch:
            raise ValueError(
                f'Target layer {name!r} outputs a batch of {out.shape[0]} '
                f'for {batch} images (e.g. window attention: batch = '
                'windows), so its maps cannot be assigned to images.'
            )
        acts.append(fold(out.detach()).float())
    logits = capture.logits.detach().float()[rows]
    tgt = targets(logits)
    per: Dict[str, List[torch.Tensor]] = {m.name: [] for m in methods}
    per_signed: Dict[str, List[torch.Tensor]] = {m.name: [] for m in methods}
    for k in range(tgt.shape[1]):
        raw = capture.grads(rows, tgt, k, last=k + 1 == tgt.shape[1])
        grads = [
            check_grad(g, n, fold) for g, n in zip(raw, capture.spec.layers)
        ]
        for m in methods:
            final, sgn = combine_layers(
                [m.layer_map(a, g, eigen_smooth) for a, g in zip(acts, grads)],
                size,
            )
            per[m.name].append(final)
            per_signed[m.name].append(sgn)
    capture.clear()
    return (
        {n: torch.stack(v, 1) for n, v in per.items()},
        {n: torch.stack(v, 1) for n, v in per_signed.items()},
        logits,
        tgt,
    )
