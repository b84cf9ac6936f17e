"""In-loop attention path: rollout, grad-attention and relevance from the
validation loop's own forward.

:class:`LoopAttentionCapture` records every block's attention while the
loop's forward runs, with the model's own attention kernels kept (fused
ones included, see :func:`~mmcam_ext.methods.attention_taps.watch_fused`):
the probabilities ``A = softmax(q kᵀ · scale + mask)`` are recomputed
beside the kernel from the ``q`` and ``k`` it was given, so the loop's
outputs do not change. Rollout needs nothing more.

For the gradient methods grad mode is switched on at the first attention
block (the loop's forward runs under ``torch.no_grad()``) and off again at
the class scores, which are kept with their graph and handed back to the
loop detached (as :class:`~mmcam_ext.apis.loop_grad.LoopGradCapture`
does). One backward per target column from the explained scores then
gives the gradient at every block's kernel output ``O``, and
``∂y/∂A = (∂y/∂O) · vᵀ``. Layer-map methods explained in the same run
(Grad-CAM on a block's norm) share that forward and that backward: their
target layers' outputs are differentiated in the same
``torch.autograd.grad`` call.
"""

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..errors import ModelError
from ..methods.attention import AttentionMethod, tokens_to_maps
from ..methods.attention_capture import (
    AttentionCapture,
    AttentionGrad,
    BlockAttention,
)
from ..structures import TargetSpec
from ..utils.model import get_module, takes_mode
from .capture_sources import check_one_per_image
from .loop_grad import LoopGradCapture, LoopSource

__all__ = [
    'LoopAttentionCapture',
    'LoopAttentionSource',
    'score_module',
    'loop_attention_supported',
]


def score_module(model: nn.Module) -> Optional[nn.Module]:
    """The module whose output is the class scores, if there is one.

    Args:
        model (nn.Module): The classifier (unwrapped).

    Returns:
        nn.Module | None: ``model.head`` of an ``ImageClassifier``,
        ``model.model`` of a ``TimmClassifier``.
    """
    if not takes_mode(model):
        return None
    head = getattr(model, 'head', None)
    if isinstance(head, nn.Module) and isinstance(
        getattr(model, 'backbone', None), nn.Module
    ):
        return head
    inner = getattr(model, 'model', None)
    if isinstance(inner, nn.Module) and head is None:
        return inner
    return None


def loop_attention_supported(model: nn.Module) -> bool:
    """Whether the attention methods can be served in the loop's forward.

    Args:
        model (nn.Module): The classifier (unwrapped).

    Returns:
        bool: A score module exists and the attention capture knows the
        backbone.
    """
    if score_module(model) is None:
        return False
    try:
        AttentionCapture(model, keep_kernel=True)
    except ModelError:
        return False
    return True


class LoopAttentionCapture(LoopGradCapture):
    """Hooks that record the attention (and, for gradient methods, build
    the graph from the first block to the scores) in the loop's forward.

    Args:
        model (nn.Module): The classifier (unwrapped); see
            :func:`loop_attention_supported`.
        spec (TargetSpec): Target layers of the layer-map methods.
        layer_methods (bool): Whether layer-map methods are explained too
            (their target layers are captured). Defaults to False.
        attention_grads (bool): Whether a gradient attention method is
            explained. Defaults to True.
    """

    path = 'in-loop attention (no extra forward)'

    def __init__(
        self,
        model: nn.Module,
        spec: TargetSpec,
        layer_methods: bool = False,
        attention_grads: bool = True,
    ) -> None:
        head = score_module(model)
        assert head is not None, 'see loop_attention_supported'
        super().__init__(model, spec, head=head)
        if not layer_methods:
            self.layers, self.outputs = [], []
        # The last target layer's output, detached (no graph): descriptors
        # of the attention maps pool it, as the general path does.
        self._last_layer = get_module(model, spec.layers[-1])
        self.last_output: Optional[torch.Tensor] = None
        self.attention = AttentionCapture(model, keep_kernel=True)
        self.grad_methods = attention_grads
        self.blocks: Optional[List[BlockAttention]] = None
        self._attn_grads: Dict[int, List[AttentionGrad]] = {}

    @property
    def complete(self) -> bool:
        """Whether the forward gave every block once, the scores and (for
        gradient methods) a graph to every block."""
        if self.logits is None or self.input_size is None:
            return False
        if not all(o is not None for o in self.outputs):
            return False
        needs_graph = self.grad_methods or any(
            o is not None and o.requires_grad for o in self.outputs
        )
        if needs_graph and not self.logits.requires_grad:
            return False
        blocks = self._collected()
        if blocks is None:
            return False
        return not self.grad_methods or all(
            b.graph.requires_grad for b in blocks
        )

    def start(self) -> 'LoopAttentionCapture':
        """Register the hooks (idempotent)."""
        if self._hooks:
            return self
        super().start()
        self._hooks.forward(self._last_layer, self._on_last_layer)
        self.attention.__enter__()
        self._hooks.on_remove(self.attention.__exit__)
        if self.grad_methods:
            for _, module, _ in self.attention.targets:
                self._hooks.pre(module, self._grad_on)
        return self

    def clear(self) -> None:
        """Drop the captured tensors (and with them the graph)."""
        super().clear()
        if hasattr(self, 'attention'):
            self.attention.clear()
        self.blocks = None
        self._attn_grads = {}
        self.last_output = None

    def source(self, rows: Sequence[int]) -> 'LoopAttentionSource':
        """The captured samples ``rows`` (see :class:`LoopAttentionSource`).

        Args:
            rows (Sequence[int]): Positions in the captured batch.

        Returns:
            LoopAttentionSource: Activations, scores, gradients and
            attention of those samples.
        """
        return LoopAttentionSource(self, rows)

    # ------------------------------------------------------------ hooks
    def _on_last_layer(self, module, args, output) -> None:
        if torch.is_tensor(output):
            self.last_output = output.detach()

    def _grad_on(self, module, args) -> None:
        if self._restore is None:
            self._restore = torch.is_grad_enabled()
            torch.set_grad_enabled(True)

    def _on_head(self, module, args, output):
        if self._restore is None and torch.is_tensor(output):
            self.logits = output.detach()  # no graph asked for: rollout
            return None
        return super()._on_head(module, args, output)

    def _collected(self) -> Optional[List[BlockAttention]]:
        if self.blocks is None:
            try:
                self.blocks = self.attention.collected()
            except RuntimeError:
                return None
        return self.blocks

    # -------------------------------------------------------- gradients
    def grads(self, rows, targets, k, last):
        """Gradients of the chosen rows' column-``k`` scores at each target
        layer; the same backward keeps ``∂y/∂A`` of every block for
        :meth:`attention_grads`."""
        assert self.logits is not None and self.blocks is not None
        outputs = [o for o in self.outputs if o is not None]
        graphs = [b.graph for b in self.blocks] if self.grad_methods else []
        index = torch.as_tensor(list(rows), device=self.logits.device)
        with torch.enable_grad():
            picked = self.logits.float().index_select(0, index)
            score = picked.gather(1, targets[:, k : k + 1]).sum()
            got = torch.autograd.grad(
                score,
                outputs + graphs,
                retain_graph=not last,
                allow_unused=True,
            )
        if graphs:
            at_graph = list(got[len(outputs) :])
            if not any(
                g is not None and bool(g[index].abs().max() > 0)
                for g in at_graph
            ):
                raise ModelError(
                    'The class score has zero gradient with respect to every '
                    'attention map, so every map would be blank. Is the head '
                    'zero-initialised? Load trained weights.'
                )
            subset = _subset(rows, self.logits)
            self._attn_grads[k] = [
                AttentionGrad(b, g, subset)
                for b, g in zip(self.blocks, at_graph)
            ]
        return list(got[: len(outputs)])

    def attention_grads(
        self, rows: Sequence[int], targets: torch.Tensor, k: int
    ) -> List[AttentionGrad]:
        """``∂y/∂A`` of every block for column ``k`` of the chosen rows (in
        the blocks' common layout, formed when a method asks), from the
        shared backward.

        Args:
            rows (Sequence[int]): Samples of the batch explained.
            targets (torch.Tensor): ``(len(rows), K)`` classes.
            k (int): Target column (asked in increasing order).

        Returns:
            list[AttentionGrad]: One per block.
        """
        if k not in self._attn_grads:
            self.grads(rows, targets, k, last=k + 1 == targets.shape[1])
        return self._attn_grads[k]


def _subset(
    rows: Sequence[int], logits: torch.Tensor
) -> Optional[torch.Tensor]:
    """``rows`` as an index into the captured batch, or ``None`` when they
    are the whole batch in order (the captured tensors serve as they are).
    """
    if list(rows) == list(range(logits.shape[0])):
        return None
    return torch.as_tensor(list(rows), device=logits.device)


def _detached(
    block: BlockAttention, index: Optional[torch.Tensor]
) -> BlockAttention:
    """The block out of the graph, for the samples ``index`` (``None``: all).

    A kept kernel's block of the whole batch is returned as it is: its
    probabilities are formed out of the graph, and only when a method asks
    (the class token's rows alone where that is all it reads).
    """
    if block.kept is not None and index is None:
        return block
    attn = block.attn.detach()
    return BlockAttention(
        block.name,
        block.raw,
        attn if index is None else attn[index],
        block.geometry,
        block.local,
    )


class LoopAttentionSource(LoopSource):
    """The chosen samples of a complete :class:`LoopAttentionCapture`.

    An :class:`~mmcam_ext.apis.capture_sources.ActivationSource` for the
    layer-map methods, plus :meth:`attention_maps` for the attention
    methods.

    Args:
        capture (LoopAttentionCapture): A capture that saw a whole forward.
        rows (Sequence[int]): Samples of the batch to explain.
    """

    def __init__(
        self, capture: LoopAttentionCapture, rows: Sequence[int]
    ) -> None:
        super().__init__(capture, rows)
        self._attention = capture
        assert capture.blocks is not None and capture.logits is not None
        subset = _subset(rows, capture.logits)
        self.blocks = [_detached(b, subset) for b in capture.blocks]
        self.head_tokens = capture.attention.head_tokens
        self.last_acts: Optional[torch.Tensor] = None
        if capture.last_output is not None:
            name = self.spec.layers[-1]
            batch = capture.logits.shape[0]
            out = check_one_per_image(name, capture.last_output, batch)
            self.last_acts = self.fold(out).float()

    def attention_maps(
        self, method: AttentionMethod, targets: torch.Tensor
    ) -> torch.Tensor:
        """Maps ``(B', K, H, W)`` of one attention method.

        Args:
            method (AttentionMethod): Rollout, grad-attention or relevance.
            targets (torch.Tensor): ``(B', K)`` classes.

        Returns:
            torch.Tensor: Maps in ``[0, 1]`` at input resolution.
        """
        cols: List[torch.Tensor] = []
        for k in range(targets.shape[1]):
            if k and method.class_agnostic:
                cols.append(cols[0])
                continue
            grads = None
            if method.uses_gradients:
                grads = self._attention.attention_grads(self._rows, targets, k)
            sal, grid = method.token_scores(
                self.blocks, grads, self.head_tokens
            )
            cols.append(tokens_to_maps(sal, grid, self.input_size))
        return torch.stack(cols, 1)

    def release(self) -> None:
        """See :meth:`ActivationSource.release` (clears the capture)."""
        self.blocks = []
        super().release()
