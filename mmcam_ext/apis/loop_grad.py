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

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..structures import TargetSpec
from ..utils.capture import GridCapture, HookSet
from ..utils.model import feature_root, get_module, takes_mode
from .capture_sources import ActivationSource, LoopCapture, check_one_per_image

__all__ = ['LoopGradCapture', 'LoopSource', 'loop_grad_supported']


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


class LoopGradCapture(LoopCapture):
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
        head (nn.Module, optional): The module whose output is the class
            scores. Defaults to None (``model.head``).
    """

    path = 'in-loop gradients (no extra forward)'

    def __init__(
        self,
        model: nn.Module,
        spec: TargetSpec,
        head: Optional[nn.Module] = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.built_for = spec
        self.layers = [get_module(model, n) for n in spec.layers]
        scores = head if head is not None else model.head
        assert isinstance(scores, nn.Module), 'see loop_grad_supported'
        self.head = scores
        self.root = feature_root(model)[1]
        source = spec.layout.grid_source
        self._grid = GridCapture(get_module(model, source) if source else None)
        self.outputs: List[Optional[torch.Tensor]] = [None] * len(self.layers)
        self.logits: Optional[torch.Tensor] = None
        self.input_size: Optional[Tuple[int, int]] = None
        self._restore: Optional[bool] = None
        self._hooks = HookSet()

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
        if self._hooks:
            return self
        self.clear()
        self._grid.grid = None
        self._grid.__enter__()
        self._hooks.on_remove(self._grid.__exit__)
        for i, layer in enumerate(self.layers):
            self._hooks.forward(layer, self._layer_hook(i))
        self._hooks.forward(self.head, self._on_head)
        self._hooks.pre(self.root, self._on_input)
        self._hooks.forward(self.model, self._on_model)
        return self

    def stop(self) -> None:
        """Remove the hooks and make sure grad mode is as it was."""
        self._hooks.remove()
        self._switch_back()

    def clear(self) -> None:
        """Drop the captured tensors (and with them the graph)."""
        self.outputs = [None] * len(self.layers)
        self.logits = None
        self.input_size = None

    def source(self, rows: Sequence[int]) -> 'LoopSource':
        """The captured samples ``rows`` (see :class:`LoopSource`).

        Args:
            rows (Sequence[int]): Positions in the captured batch.

        Returns:
            LoopSource: Their activations, scores and gradients.
        """
        return LoopSource(self, rows)

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


class LoopSource(ActivationSource):
    """The chosen samples of a complete :class:`LoopGradCapture`.

    Args:
        capture (LoopGradCapture): A capture that saw a whole forward.
        rows (Sequence[int]): Samples of the batch to explain.

    Raises:
        LayoutError: A target layer's batch is not one row per image.
    """

    def __init__(
        self, capture: 'LoopGradCapture', rows: Sequence[int]
    ) -> None:
        assert capture.complete and capture.logits is not None
        assert capture.input_size is not None
        self.spec, self.input_size = capture.spec, capture.input_size
        self._capture, self._rows = capture, list(rows)
        batch = capture.logits.shape[0]
        outputs = [o for o in capture.outputs if o is not None]
        self.acts = [
            self.fold(check_one_per_image(n, o, batch).detach()).float()
            for n, o in zip(self.spec.layers, outputs)
        ]
        self.logits = capture.logits.detach().float()[self._rows]

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """See :meth:`ActivationSource.fold` (the chosen rows only)."""
        grid = self._capture.grid
        folded = self.spec.layout.to_nchw(x, grid, self.input_size)
        return folded[self._rows]

    def grads(self, targets, k, last):
        """See :meth:`ActivationSource.grads`."""
        return self._capture.grads(self._rows, targets, k, last)

    def release(self) -> None:
        """See :meth:`ActivationSource.release` (clears the capture)."""
        self._capture.clear()
