"""Record every block's attention, and where it lives, for one explanation.

:class:`AttentionCapture` reads the backbone's facts row
(:mod:`mmcam_ext.utils.backbone_facts`: which modules hold the family's
attention, or why the methods cannot follow it), installs one recorder per
module (:mod:`attention_adapters`: how each attention class is tapped and
how its windows map onto the token grid) and, after one forward pass,
returns the blocks in the order they ran as :class:`BlockAttention`
records: the probabilities in the common ``(B, W, heads, Nq, Nk)`` layout
plus their :class:`~mmcam_ext.methods.attention_geometry.BlockGeometry`.

The recorded tensors stay in the autograd graph, so a method gets
``∂y/∂A`` with ``torch.autograd.grad(score, [b.raw for b in blocks])``
and folds it with :meth:`BlockAttention.local`. Everything is restored in
``__exit__``, also when the body raises: no hook, attribute or flag stays on
the model, and timm's fused-attention flags get their values back.

Global attention over a ``(B, N, C)`` sequence gets its token grid from,
in this order: the family's grid source (``PatchEmbed`` returns
``(x, (h, w))``), the previous block's grid, timm's patch embedding for
this input size, or the input size itself (``solve_grid``).
"""

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..errors import ModelError
from ..structures import solve_grid
from ..utils.backbone_facts import (
    FAMILY_FACTS,
    GRADIENT_METHODS_HINT,
    BackboneFacts,
    find_facts,
    head_tokens,
)
from ..utils.capture import GridCapture, HookSet
from ..utils.model import expand_path, feature_root, num_extra_tokens
from .attention_adapters import Adapter, Local, adapter_names, find_adapter
from .attention_geometry import (
    BlockGeometry,
    TokenSpace,
    class_query_geometry,
    global_geometry,
)
from .attention_taps import (
    Recorded,
    swap_sdpa,
    tap_dropout,
    tap_softmax,
    unfuse_timm,
    watch_fused,
    watch_sdpa,
)

__all__ = [
    'AttentionCapture',
    'AttentionGrad',
    'BlockAttention',
    'dense_grad',
    'attention_facts',
    'attention_modules',
    'GRADIENT_METHODS_HINT',
]

# Extra tokens a block may carry beyond the grid (cls, dist, registers).
_MAX_EXTRA = 16
_TAPS = {'sdpa': swap_sdpa, 'dropout': tap_dropout, 'softmax': tap_softmax}
_METHODS = 'attention_rollout, grad_attention, attention_relevance'


class BlockAttention:
    """One block's recorded attention.

    Args:
        name (str): The attention module's name under the backbone.
        raw (torch.Tensor): The recorded tensor, in the autograd graph (a
            zero-stride placeholder of the same shape for a kept kernel).
        attn (torch.Tensor, optional): ``(B, W, heads, Nq, Nk)`` view of
            ``raw``; ``None`` for a kept kernel: formed from ``kept`` on
            first use.
        geometry (BlockGeometry): Where its entries live.
        local (Callable): Puts a tensor shaped like ``raw`` (its gradient)
            in the layout of ``attn``.
        kept (Recorded, optional): With a kept kernel
            (``keep_kernel=True``), what the kernel was given and its
            output: the gradient is read at the output. Defaults to None
            (at ``raw``).
    """

    def __init__(
        self,
        name: str,
        raw: torch.Tensor,
        attn: Optional[torch.Tensor],
        geometry: BlockGeometry,
        local: Callable[[torch.Tensor], torch.Tensor],
        kept: Optional[Recorded] = None,
    ) -> None:
        if attn is None and kept is None:
            raise ValueError('BlockAttention needs attn or a kept kernel.')
        self.name, self.raw, self.geometry = name, raw, geometry
        self.local, self.kept = local, kept
        self._attn = attn

    @property
    def attn(self) -> torch.Tensor:
        """``(B, W, heads, Nq, Nk)`` probabilities."""
        if self._attn is None:
            assert self.kept is not None
            self._attn = self.local(self.kept.attn)
        return self._attn

    @attn.setter
    def attn(self, value: torch.Tensor) -> None:
        """Replace the probabilities (e.g. by their detached copy)."""
        self._attn = value

    @property
    def space(self) -> TokenSpace:
        """The block's tokens."""
        return self.geometry.space

    @property
    def graph(self) -> torch.Tensor:
        """The tensor whose gradient gives ``∂y/∂A`` (see
        :meth:`attn_grad`)."""
        return self.raw if self.kept is None else self.kept.graph

    def attn_grad(self, grad: Optional[torch.Tensor]) -> torch.Tensor:
        """``∂y/∂A`` in the layout of :attr:`attn` from the gradient at
        :attr:`graph` (``None``: zero)."""
        if grad is None:
            return torch.zeros_like(self.attn)
        if self.kept is not None:
            grad = self.kept.attn_grad(grad)
        return self.local(grad.detach())

    def head_rows(
        self, grad: Optional[torch.Tensor], rows: int
    ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """``A`` and ``∂y/∂A`` of the first ``rows`` query tokens alone,
        ``(B, heads, rows, Nk)`` each, where that is cheaper than the whole
        matrices: a kept kernel of global attention over a space whose
        first ``rows`` tokens are extra (class) tokens. ``None`` otherwise.

        Args:
            grad (torch.Tensor, optional): The gradient at :attr:`graph`.
            rows (int): Leading query rows.

        Returns:
            tuple | None: ``(A_rows, dA_rows)``.
        """
        if not self._kept_global(grad) or not (
            0 < rows <= self.geometry.space.extra
        ):
            return None
        kept = self.kept
        assert kept is not None and grad is not None
        return kept.attn_rows(rows), kept.attn_grad(grad.detach(), rows)

    def readout_score(
        self, grad: Optional[torch.Tensor], row: torch.Tensor
    ) -> Optional[torch.Tensor]:
        """``row @ mean_heads(A ⊙ ∂y/∂A)`` ``(B, Nk)`` without forming
        ``∂y/∂A``, where the block allows it: a kept kernel of global
        attention (one window, every token a query and a key).

        With ``∂y/∂A = (∂y/∂O) vᵀ`` per head,
        ``Σ_i r_i A_ij ∂A_ij = Σ_d v_jd [Aᵀ (r ⊙ ∂y/∂O)]_jd``: one
        product instead of forming ``∂y/∂A`` and multiplying it entry by
        entry.

        Args:
            grad (torch.Tensor, optional): The gradient at :attr:`graph`.
            row (torch.Tensor): ``(B, Nq)`` readout row.

        Returns:
            torch.Tensor | None: The scores (float64), or ``None``.
        """
        if not self._kept_global(grad):
            return None
        assert self.kept is not None and grad is not None
        attn = self.kept.attn
        weights = row.to(attn.dtype)[:, None, :, None]
        pulled = attn.transpose(-2, -1) @ (grad.detach() * weights)
        value = self.kept.value.detach()
        return (pulled * value).sum(-1).mean(1).double()

    def _kept_global(self, grad: Optional[torch.Tensor]) -> bool:
        """A kept kernel of global attention: one window, the block's
        tokens its queries and its keys, a residual path."""
        geom, kept = self.geometry, self.kept
        size = geom.space.size
        return (
            kept is not None
            and grad is not None
            and geom.is_global
            and tuple(kept.shape[-2:]) == (size, size)
        )


class AttentionGrad:
    """``∂y/∂A`` of one block for one target column, formed when a method
    asks: the whole tensor (:meth:`dense`), or only the first query rows
    where the block allows it (:meth:`head_rows`).

    Args:
        block (BlockAttention): The block (of the whole captured batch).
        grad (torch.Tensor, optional): The gradient at ``block.graph``
            (``None``: zero).
        index (torch.Tensor, optional): The samples explained, when not
            the whole batch. Defaults to None.
    """

    def __init__(
        self,
        block: BlockAttention,
        grad: Optional[torch.Tensor],
        index: Optional[torch.Tensor] = None,
    ) -> None:
        self.block, self.grad, self.index = block, grad, index
        self._dense: Optional[torch.Tensor] = None

    def dense(self) -> torch.Tensor:
        """``∂y/∂A`` in the block's layout (formed once)."""
        if self._dense is None:
            got = self.block.attn_grad(self.grad)
            self._dense = got if self.index is None else got[self.index]
        return self._dense

    def times(self, attn: torch.Tensor) -> torch.Tensor:
        """``∂y/∂A ⊙ attn`` as a new tensor (the caller may overwrite it);
        for a kept kernel without a formed :meth:`dense`, in place of the
        freshly formed ``∂y/∂A`` (elsewhere ``∂y/∂A`` is a view of the
        recorded gradient, which must stay as it is).

        Args:
            attn (torch.Tensor): In the block's layout.

        Returns:
            torch.Tensor: The product.
        """
        if self._dense is not None or self.block.kept is None:
            return self.dense() * attn
        got = self.block.attn_grad(self.grad)
        if self.index is not None:
            got = got[self.index]
        return got.mul_(attn)

    def head_rows(
        self, rows: int
    ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """See :meth:`BlockAttention.head_rows` (``None`` for a subset of
        the batch, whose blocks are dense copies)."""
        if self.index is not None:
            return None
        return self.block.head_rows(self.grad, rows)

    def readout_score(self, row: torch.Tensor) -> Optional[torch.Tensor]:
        """See :meth:`BlockAttention.readout_score` (``None`` for a subset
        of the batch)."""
        if self.index is not None:
            return None
        return self.block.readout_score(self.grad, row)


def dense_grad(grad) -> torch.Tensor:
    """``grad`` as a tensor in its block's layout.

    Args:
        grad (torch.Tensor | AttentionGrad): A gradient of a block.

    Returns:
        torch.Tensor: The dense gradient.
    """
    return grad.dense() if isinstance(grad, AttentionGrad) else grad


def _supported_families() -> str:
    names = [
        n for n, f in FAMILY_FACTS.items() if f.attention.unsupported is None
    ]
    return ', '.join(names) + ' (and subclasses), timm models'


def attention_facts(backbone: nn.Module) -> BackboneFacts:
    """The backbone's facts row; a clear error where attention cannot work.

    Args:
        backbone (nn.Module): The feature extractor.

    Returns:
        BackboneFacts: The row.

    Raises:
        ModelError: For unknown families and families whose attention the
            methods cannot follow, with the reason.
    """
    name = type(backbone).__name__
    facts = find_facts(backbone)
    if facts is None:
        raise ModelError(
            f'Attention methods ({_METHODS}) do not know the backbone '
            f'{name}. Supported families: {_supported_families()}. '
            f'{GRADIENT_METHODS_HINT}'
        )
    if facts.attention.unsupported is not None:
        raise ModelError(
            f'Attention methods ({_METHODS}) cannot follow {name}: '
            f'{facts.attention.unsupported}. {GRADIENT_METHODS_HINT}'
        )
    return facts


def _pattern(text: str) -> 're.Pattern[str]':
    if text == '**':
        return re.compile('.+')
    return re.compile(
        '.'.join(re.escape(p) for p in text.split('.')).replace(r'\*', '[^.]+')
    )


def attention_modules(
    backbone: nn.Module, patterns: Sequence[str]
) -> List[Tuple[str, nn.Module, Adapter]]:
    """Modules matching the facts patterns that have a recorder.

    Args:
        backbone (nn.Module): The feature extractor.
        patterns (Sequence[str]): Facts patterns (``'layers.*.attn'``).

    Returns:
        list[tuple]: ``(name, module, adapter)`` in definition order.
    """
    regexes = [_pattern(p) for p in patterns]
    found = []
    for name, module in backbone.named_modules():
        if not any(r.fullmatch(name) for r in regexes):
            continue
        adapter = find_adapter(module)
        if adapter is not None:
            found.append((name, module, adapter))
    return found


@dataclass
class _Call:
    """What one recorder saw: forward arguments, then the probabilities."""

    index: int
    args: tuple = ()
    kwargs: Optional[dict] = None
    local: Optional[Local] = None
    raw: Optional[torch.Tensor] = None
    kept: Optional[Recorded] = None
    count: int = 0


class AttentionCapture:
    """Record every block's attention and its geometry for one forward.

    Use as a context manager around one forward pass; read the blocks with
    :meth:`collected`.

    Args:
        model (nn.Module): A classifier (``model.backbone`` or a
            ``TimmClassifier``'s ``model.model`` is explained) or a
            backbone.
        keep_kernel (bool): Leave every attention kernel as the model has
            it (fused ones included: outputs bit-identical) and recompute
            the probabilities beside it (see ``attention_taps``); by
            default the kernels are made explicit and the probabilities
            tapped in the graph. Defaults to False.
    """

    def __init__(self, model: nn.Module, keep_kernel: bool = False) -> None:
        self.keep_kernel = keep_kernel
        _, self.backbone = feature_root(model)
        self.facts = attention_facts(self.backbone)
        self.targets = attention_modules(
            self.backbone, self.facts.attention.modules
        )
        if not self.targets:
            raise ModelError(
                f'Found no attention module of a known class in '
                f'{type(self.backbone).__name__} (looked for '
                f'{self.facts.attention.modules}; known classes: '
                f'{", ".join(adapter_names())}). {GRADIENT_METHODS_HINT}'
            )
        self.head_tokens = head_tokens(self.backbone, self.facts)
        grid_name = (
            expand_path(self.backbone, '', self.facts.grid)
            if self.facts.grid
            else None
        )
        self._grid = GridCapture(
            self.backbone.get_submodule(grid_name) if grid_name else None
        )
        self._calls: List[_Call] = []
        self._order: List[int] = []
        self._hooks = HookSet()
        self.input_hw: Optional[Tuple[int, int]] = None

    @property
    def num_extra_tokens(self) -> int:
        """Extra tokens the backbone declares (or its facts row fixes)."""
        if self.facts.extra is not None and self.facts.extra > 0:
            return self.facts.extra
        return num_extra_tokens(self.backbone)

    def __enter__(self) -> 'AttentionCapture':
        self.clear()
        try:
            self._hooks.pre(self.backbone, self._on_input)
            for i, (_, module, adapter) in enumerate(self.targets):
                self._install(i, module, adapter)
            self._grid.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.remove()
        self._grid.__exit__()

    def clear(self) -> None:
        """Forget what was recorded (before another forward pass)."""
        self._calls = [_Call(i) for i in range(len(self.targets))]
        self._order = []

    # ------------------------------------------------------------------
    def _on_input(self, module, args) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].ndim == 4:
            self.input_hw = (int(args[0].shape[-2]), int(args[0].shape[-1]))

    def _install(self, i: int, module: nn.Module, adapter: Adapter) -> None:
        def record(raw) -> None:
            self._on_record(i, raw)

        fused = (
            module.get_submodule(adapter.unfuse)
            if adapter.unfuse is not None
            else None
        )
        if fused is not None and self.keep_kernel:
            self._hooks.on_remove(watch_fused(fused, record))
        elif fused is not None:
            self._hooks.on_remove(unfuse_timm(fused))

        def on_call(mod, args, kwargs) -> None:
            self._calls[i].args, self._calls[i].kwargs = args, kwargs

        self._hooks.pre(module, on_call, with_kwargs=True)
        tapped = module.get_submodule(adapter.at) if adapter.at else module
        tap = _TAPS[adapter.tap]
        if self.keep_kernel and adapter.tap == 'sdpa':
            tap = watch_sdpa
        self._hooks.on_remove(tap(tapped, record))

    def _on_record(self, i: int, raw: Union[torch.Tensor, Recorded]) -> None:
        call = self._calls[i]
        _, module, adapter = self.targets[i]
        call.kept = raw if isinstance(raw, Recorded) else None
        if isinstance(raw, Recorded):  # the shape is known, A is not yet
            raw = raw.placeholder()
        call.raw, call.count = raw, call.count + 1
        call.local = adapter.geometry(
            module, call.args, call.kwargs or {}, raw
        )
        self._order.append(i)

    # ------------------------------------------------------------------
    def collected(self) -> List[BlockAttention]:
        """The recorded blocks in the order they ran, with their geometry.

        Returns:
            list[BlockAttention]: One record per attention module.

        Raises:
            RuntimeError: When a module did not run, or ran twice.
        """
        names = [n for n, _, _ in self.targets]
        missing = [names[c.index] for c in self._calls if c.count == 0]
        if missing:
            raise RuntimeError(
                f'Attention of {missing} of {type(self.backbone).__name__} '
                'did not run; was the forward pass inside the capture?'
            )
        repeated = [names[c.index] for c in self._calls if c.count > 1]
        if repeated:
            raise RuntimeError(
                f'Attention of {repeated} ran more than once in one '
                'capture; call clear() between forward passes.'
            )
        blocks: List[BlockAttention] = []
        for i in self._order:
            blocks.append(self._block(i, blocks[-1] if blocks else None))
        return blocks

    def _block(
        self, i: int, previous: Optional[BlockAttention]
    ) -> BlockAttention:
        call = self._calls[i]
        name, module, adapter = self.targets[i]
        assert call.local is not None and call.raw is not None
        local = call.local
        geometry = local.geometry
        if geometry is None:
            space = self._space(local.attn.shape[-1], previous)
            geometry = (
                class_query_geometry(
                    space, local.class_queries, local.attn.device
                )
                if local.class_queries
                else global_geometry(space, local.attn.device)
            )

        def to_local(t: torch.Tensor) -> torch.Tensor:
            return adapter.geometry(
                module, call.args, call.kwargs or {}, t
            ).attn

        attn = None if call.kept is not None else local.attn
        return BlockAttention(
            name, call.raw, attn, geometry, to_local, call.kept
        )

    def _space(
        self, tokens: int, previous: Optional[BlockAttention]
    ) -> TokenSpace:
        """The token space of a global block with ``tokens`` tokens."""
        candidates = [self._grid.grid, self._timm_grid()]
        if previous is not None:
            candidates.insert(1, previous.space.grid)
        for grid in candidates:
            if grid is not None and 0 <= tokens - grid[0] * grid[1]:
                extra = tokens - grid[0] * grid[1]
                if extra <= _MAX_EXTRA:
                    return TokenSpace((int(grid[0]), int(grid[1])), extra)
        if self.input_hw is None:
            raise RuntimeError('The backbone forward did not run.')
        extra = self.num_extra_tokens
        return TokenSpace(solve_grid(tokens - extra, self.input_hw), extra)

    def _timm_grid(self) -> Optional[Tuple[int, int]]:
        embed = getattr(self.backbone, 'patch_embed', None)
        size = getattr(embed, 'dynamic_feat_size', None)
        if self.input_hw is None or not callable(size):
            return None
        grid = size(self.input_hw)
        return int(grid[0]), int(grid[1])
