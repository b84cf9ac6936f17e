"""How the attention probabilities of one module are recorded.

Each tap installs itself on a module and returns a function that undoes it;
nothing stays on the model after that (no hook, no attribute). The recorded
tensor is the one the model goes on computing with, so it stays in the
autograd graph: ``torch.autograd.grad(score, recorded)`` gives ``∂y/∂A``.

* :func:`swap_sdpa`: MMPretrain's ``MultiheadAttention`` (and Twins'
  sub-sampled attention) call ``F.scaled_dot_product_attention`` through an
  instance attribute, which never materialises the probabilities; it is
  replaced by an explicit ``softmax(QKᵀ · scale) @ V``.
* :func:`tap_dropout`: classes that compute explicit probabilities and pass
  them through ``attn_drop`` (BEiT, EVA-02, Swin's window attention, timm's
  unfused path, ...) are tapped at that dropout's output.
* :func:`tap_softmax`: classes that call ``Tensor.softmax`` with no module
  after it (TinyViT, ViT-SAM, EfficientFormer) are tapped with a
  ``TorchFunctionMode`` active only during that module's forward.
* :func:`unfuse_timm`: timm modules pick the fused kernel through their
  ``fused_attn`` flag at call time; it is set to ``False`` for the capture
  and restored exactly (the unfused path computes the same values).

Kernel-keeping taps, for a forward whose outputs must not change (the
validation loop's own): :func:`watch_sdpa` and :func:`watch_fused` let the
module call its own (fused) attention kernel and record ``q``, ``k``, ``v``
and the kernel's output ``O``; the probabilities are recomputed beside it
when a method asks, ``A = softmax(q kᵀ · scale + mask)`` (only the class
token's rows where that is all a method reads), and
``∂y/∂A = (∂y/∂O) · vᵀ`` (per head, since ``O = A v``), see
:class:`Recorded`.
"""

import functools
import math
from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ModelError

__all__ = [
    'Record',
    'Recorded',
    'watch_sdpa',
    'watch_fused',
    'Restore',
    'swap_sdpa',
    'tap_dropout',
    'tap_softmax',
    'unfuse_timm',
]

Restore = Callable[[], None]
Record = Callable[..., None]


class Recorded:
    """What a kept kernel was given and gave back; its probabilities are
    formed only when asked.

    ``A = softmax(q kᵀ · scale + mask)`` is recomputed from the recorded
    ``q`` and ``k`` on first use of :attr:`attn` (out of the graph, as the
    explicit path of :func:`swap_sdpa` computes it), or only for the first
    query rows (:meth:`attn_rows`): a method that reads the class token's
    row never forms the ``N x N`` matrix.

    Args:
        query (torch.Tensor): ``q`` ``(B, heads, Nq, d)``.
        key (torch.Tensor): ``k`` ``(B, heads, Nk, d)``.
        value (torch.Tensor): ``v`` ``(B, heads, Nk, dv)``.
        graph (torch.Tensor): The kernel's output ``O = A v``, in the
            graph: the tensor to differentiate.
        scale (float): The logit multiplier.
        mask (torch.Tensor, optional): The additive or boolean mask the
            kernel was given. Defaults to None.
    """

    def __init__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        graph: torch.Tensor,
        scale: float,
        mask: Optional[torch.Tensor] = None,
    ) -> None:
        self.query, self.key = query.detach(), key.detach()
        self.value, self.graph = value, graph
        self.scale, self.mask = scale, mask
        self._attn: Optional[torch.Tensor] = None

    @property
    def shape(self) -> torch.Size:
        """Shape of :attr:`attn`: ``(..., Nq, Nk)``."""
        return torch.Size((*self.query.shape[:-1], self.key.shape[-2]))

    def placeholder(self) -> torch.Tensor:
        """A zero-stride tensor shaped like :attr:`attn` (no memory), for
        code that needs only its shape, dtype and device."""
        zero = torch.zeros(
            (), dtype=self.query.dtype, device=self.query.device
        )
        return zero.expand(self.shape)

    @property
    def attn(self) -> torch.Tensor:
        """``A`` ``(B, heads, Nq, Nk)``, out of the graph (formed once)."""
        if self._attn is None:
            self._attn = _probabilities(
                self.query, self.key, self.scale, self.mask
            )
        return self._attn

    def attn_rows(self, rows: int) -> torch.Tensor:
        """The first ``rows`` query rows of :attr:`attn`, computed alone.

        Args:
            rows (int): Leading query rows.

        Returns:
            torch.Tensor: ``(B, heads, rows, Nk)``.
        """
        if self._attn is not None:
            return self._attn[..., :rows, :]
        mask = self.mask
        if mask is not None and mask.ndim >= 2 and mask.shape[-2] > 1:
            mask = mask[..., :rows, :]
        return _probabilities(
            self.query[..., :rows, :], self.key, self.scale, mask
        )

    def attn_grad(
        self, grad_out: torch.Tensor, rows: Optional[int] = None
    ) -> torch.Tensor:
        """``∂y/∂A = (∂y/∂O) · vᵀ`` from the gradient at ``O``.

        Args:
            grad_out (torch.Tensor): ``∂y/∂O``.
            rows (int, optional): Only the first query rows. Defaults to
                None (all).

        Returns:
            torch.Tensor: Shaped like :attr:`attn` (or its first rows).
        """
        if rows is not None:
            grad_out = grad_out[..., :rows, :]
        return grad_out @ self.value.detach().transpose(-2, -1)


def _probabilities(
    query: torch.Tensor,
    key: torch.Tensor,
    scale: float,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``softmax(q kᵀ · scale + mask)`` out of the graph.

    The softmax is written out in place (``exp(x - max) / sum``): on the
    CPU that is about three times faster than ``Tensor.softmax`` for
    attention-sized rows, and equal to it within float32 rounding.
    """
    with torch.no_grad():
        logits = (query * scale) @ key.transpose(-2, -1)
        if mask is not None and mask.dtype == torch.bool:
            logits.masked_fill_(~mask, float('-inf'))
        elif mask is not None:
            logits = logits + mask
        logits.sub_(logits.amax(dim=-1, keepdim=True)).exp_()
        return logits.div_(logits.sum(dim=-1, keepdim=True))


def _sdpa_args(args: tuple, kwargs: dict):
    """``(q, k, v, attn_mask)`` of a scaled-dot-product-attention call."""
    names = ('query', 'key', 'value', 'attn_mask')
    got: List[Any] = [
        args[i] if len(args) > i else kwargs.get(n)
        for i, n in enumerate(names)
    ]
    if kwargs.get('is_causal') or (len(args) > 5 and args[5]):
        raise ModelError(
            'Causal attention is not supported by the attention capture.'
        )
    return got


def _sdpa_scale(original: Callable) -> Callable[[torch.Tensor], float]:
    """The logit multiplier ``original`` applies, as a function of ``q``.

    ``F.scaled_dot_product_attention`` multiplies by ``d ** -0.5``.
    MMPretrain's ``scaled_dot_product_attention_pyimpl`` (used when
    ``qk_scale`` is set) *divides* by its ``scale`` argument, which the
    module sets to ``d ** -0.5``; that is reproduced as is, so outputs stay
    equal.
    """
    from mmpretrain.models.utils.attention import (
        scaled_dot_product_attention_pyimpl as pyimpl,
    )

    if original is F.scaled_dot_product_attention:
        return lambda q: q.size(-1) ** -0.5
    func, kwargs = original, {}
    if isinstance(original, functools.partial):
        func, kwargs = original.func, original.keywords
    if func is pyimpl:
        return lambda q: 1.0 / (kwargs.get('scale') or math.sqrt(q.size(-1)))
    raise ModelError(
        f'MultiheadAttention calls an unknown attention function '
        f'{original!r}; cannot reproduce it explicitly.'
    )


def _instance_sdpa(module: nn.Module, verb: str) -> Any:
    """The module's own ``scaled_dot_product_attention`` attribute, or a
    :class:`ModelError` saying it cannot ``verb`` it."""
    original = module.__dict__.get('scaled_dot_product_attention')
    if original is None:
        raise ModelError(
            f'{type(module).__name__} has no instance attribute '
            f'scaled_dot_product_attention to {verb}.'
        )
    return original


def swap_sdpa(module: nn.Module, record: Record) -> Restore:
    """Replace ``module.scaled_dot_product_attention`` by an explicit one.

    Args:
        module (nn.Module): An MMPretrain ``MultiheadAttention``.
        record (Callable): Receives the probabilities ``(B, heads, Nq, Nk)``.

    Returns:
        Callable: Restores the original function.
    """
    original = _instance_sdpa(module, 'swap')
    scale_of = _sdpa_scale(original)

    def explicit(query, key, value, attn_mask=None, dropout_p=0.0, **kwargs):
        if attn_mask is not None or kwargs.get('is_causal'):
            raise ModelError(
                'Attention masks are not supported by the attention capture.'
            )
        logits = (query @ key.transpose(-2, -1)) * scale_of(query)
        attn = logits.softmax(dim=-1)
        record(attn)
        if dropout_p > 0:
            attn = torch.dropout(attn, dropout_p, True)
        return attn @ value

    # torch annotates Module.__setattr__ for tensors and modules only; any
    # other value is stored as a plain attribute, as intended here.
    module.scaled_dot_product_attention = explicit  # type: ignore[assignment]

    def restore() -> None:
        module.scaled_dot_product_attention = original

    return restore


def watch_sdpa(module: nn.Module, record: Record) -> Restore:
    """Record around ``module.scaled_dot_product_attention``, kept as is.

    The module still calls its own function (outputs unchanged, bit for
    bit); ``record`` receives a :class:`Recorded` (``q``, ``k``, ``v``,
    the function's output; the probabilities formed when asked).

    Args:
        module (nn.Module): An MMPretrain ``MultiheadAttention``.
        record (Callable): ``record(recorded)``.

    Returns:
        Callable: Restores the original function.
    """
    original = _instance_sdpa(module, 'watch')
    scale_of = _sdpa_scale(original)

    def watched(*args, **kwargs):
        out = original(*args, **kwargs)
        query, key, value, mask = _sdpa_args(args, kwargs)
        record(Recorded(query, key, value, out, scale_of(query), mask))
        return out

    module.scaled_dot_product_attention = watched  # type: ignore[assignment]

    def restore() -> None:
        module.scaled_dot_product_attention = original

    return restore


class _SdpaMode(TorchFunctionMode):
    """Hands every ``F.scaled_dot_product_attention`` call to ``record``
    (computed as asked: the kernel is kept)."""

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            query, key, value, mask = _sdpa_args(args, kwargs)
            scale = kwargs.get('scale') or query.size(-1) ** -0.5
            self.record(Recorded(query, key, value, out, scale, mask))
        return out


def watch_fused(module: nn.Module, record: Record) -> Restore:
    """Record the fused attention kernel a timm module calls, kept as is.

    A ``TorchFunctionMode`` is active while the module's ``forward`` runs
    (an instance attribute, removed on restore); it passes every call on
    unchanged and hands each ``F.scaled_dot_product_attention`` to
    ``record`` as a :class:`Recorded`. With ``fused_attn`` off the module
    never calls it and the explicit probabilities are tapped as usual.

    Args:
        module (nn.Module): A timm module with a ``fused_attn`` flag.
        record (Callable): ``record(recorded)``.

    Returns:
        Callable: Restores the module.
    """
    if not hasattr(module, 'fused_attn'):
        return lambda: None
    if 'forward' in module.__dict__:
        raise ModelError(
            f'{type(module).__name__} already has an instance forward; '
            'cannot watch its attention kernel.'
        )
    forward = module.forward

    def wrapped(*args, **kwargs):
        with _SdpaMode(record):
            return forward(*args, **kwargs)

    module.__dict__['forward'] = wrapped

    def restore() -> None:
        module.__dict__.pop('forward', None)

    return restore


def tap_dropout(module: nn.Module, record: Record) -> Restore:
    """Record the explicit probabilities an ``nn.Dropout`` receives.

    Args:
        module (nn.Module): The attention's ``attn_drop``.
        record (Callable): Receives the probabilities.

    Returns:
        Callable: Removes the hook.
    """
    if not isinstance(module, nn.Dropout):
        raise ModelError(
            f'{type(module).__name__} is not an nn.Dropout; cannot tap its '
            'attention.'
        )
    handle = module.register_forward_hook(lambda mod, args, out: record(out))
    return handle.remove


_SOFTMAXES = (torch.Tensor.softmax, torch.softmax, F.softmax)


class _SoftmaxMode(TorchFunctionMode):
    """Hands every last-dim softmax computed inside it to ``record``."""

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _SOFTMAXES:
            dim = kwargs.get('dim') if kwargs else None
            dim = args[1] if dim is None and len(args) > 1 else dim
            if dim in (-1, out.ndim - 1):
                self.record(out)
        return out


def tap_softmax(module: nn.Module, record: Record) -> Restore:
    """Record the softmax a module computes in its forward.

    The module's ``forward`` is wrapped (an instance attribute, removed on
    restore) so that a ``TorchFunctionMode`` is active exactly while it
    runs, also when it raises.

    Args:
        module (nn.Module): The attention module.
        record (Callable): Receives the probabilities.

    Returns:
        Callable: Restores the module.
    """
    if 'forward' in module.__dict__:
        raise ModelError(
            f'{type(module).__name__} already has an instance forward; '
            'cannot tap its softmax.'
        )
    forward = module.forward
    seen: List[torch.Tensor] = []

    def wrapped(*args, **kwargs):
        seen.clear()
        with _SoftmaxMode(seen.append):
            out = forward(*args, **kwargs)
        if len(seen) != 1:
            raise ModelError(
                f'{type(module).__name__} computed {len(seen)} softmaxes in '
                'one forward; expected exactly one (its attention).'
            )
        record(seen[0])
        return out

    module.__dict__['forward'] = wrapped

    def restore() -> None:
        module.__dict__.pop('forward', None)

    return restore


def unfuse_timm(module: nn.Module) -> Restore:
    """Switch a timm attention module to its explicit (unfused) path.

    Args:
        module (nn.Module): A timm module with a ``fused_attn`` flag.

    Returns:
        Callable: Restores the flag.
    """
    if not hasattr(module, 'fused_attn'):
        return lambda: None
    state = module.__dict__
    had_own, flag = 'fused_attn' in state, state.get('fused_attn')
    state['fused_attn'] = False

    def restore() -> None:
        if had_own:
            state['fused_attn'] = flag
        else:
            state.pop('fused_attn', None)

    return restore
