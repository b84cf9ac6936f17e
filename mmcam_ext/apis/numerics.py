"""NaN/Inf checks that say where the bad value first appears; blank maps.

A NaN anywhere in a forward pass spreads to every map, and an all-NaN map
drawn as an overlay looks like a plain (blank) picture: a wrong result that
exits 0. So the engine checks the class scores, the gradients and the maps
it computed; only when one is not finite does :func:`locate_non_finite`
look for the first place it appears (the input, a module's parameters or
buffers, or the output of the first layer that produced it, by a second
forward with a finiteness check per module), so the normal path costs one
``isfinite`` per tensor.
"""

from contextlib import nullcontext
from itertools import chain
from typing import Callable, ContextManager, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import NumericalError
from ..utils.capture import HookSet
from ..utils.model import classifier_logits

__all__ = [
    'non_finite',
    'locate_non_finite',
    'check_logits',
    'check_gradient',
    'check_maps',
    'blank_flags',
]

ContextFactory = Callable[[], ContextManager]


def non_finite(tensor: torch.Tensor) -> bool:
    """Whether a tensor holds any NaN or Inf.

    Args:
        tensor (torch.Tensor): Any tensor.

    Returns:
        bool: True if some value is not finite.
    """
    return not bool(torch.isfinite(tensor).all())


def _count(tensor: torch.Tensor) -> str:
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return f'{nan} NaN and {inf} Inf of {tensor.numel()} values'


def _tensors(output) -> List[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item)]
    return []


def _bad_weight(model: nn.Module) -> Optional[str]:
    """The first parameter or buffer holding NaN/Inf, described."""
    named = chain(model.named_parameters(), model.named_buffers())
    for name, tensor in named:
        if tensor.is_floating_point() and non_finite(tensor):
            owner = name.rpartition('.')[0]
            kind = type(model.get_submodule(owner)).__name__
            return (
                f'the weights: {name!r} of module {owner!r} ({kind}) holds '
                f'{_count(tensor)}; the checkpoint or the model is corrupt'
            )
    return None


def _first_bad_output(
    model: nn.Module, inputs: torch.Tensor, context: ContextFactory
) -> Optional[str]:
    """The first module (in completion order) whose output is not finite."""
    found: List[str] = []

    def make_hook(name: str):
        def hook(module, args, output):
            if not found and any(non_finite(t) for t in _tensors(output)):
                found.append(f'{name!r} ({type(module).__name__})')

        return hook

    with HookSet() as hooks:
        for name, module in model.named_modules():
            if name:
                hooks.forward(module, make_hook(name))
        with torch.no_grad(), context():
            classifier_logits(model, inputs)
    return found[0] if found else None


def locate_non_finite(
    model: nn.Module,
    inputs: torch.Tensor,
    context: ContextFactory = nullcontext,
) -> str:
    """Where a NaN/Inf of the class scores first appears.

    Args:
        model (nn.Module): The classifier, in the state of the failing pass.
        inputs (torch.Tensor): The failing batch.
        context (callable): Makes the context the failing forward ran in
            (e.g. ``torch.autocast``). Defaults to no context.

    Returns:
        str: ``'the input batch ...'``, ``'the weights: ...'``, ``'the
        activations of layer ...'`` or ``'the class scores ...'``.
    """
    if non_finite(inputs):
        return (
            f'the input batch itself ({_count(inputs)}): check the images '
            'and the data preprocessor'
        )
    weight = _bad_weight(model)
    if weight is not None:
        return weight
    layer = _first_bad_output(model, inputs, context)
    if layer is not None:
        return (
            f'the activations of layer {layer}: its inputs are finite, its '
            'output is not (an overflow, e.g. under float16 autocast, or a '
            'division by zero)'
        )
    return (
        'the class scores only: every layer output is finite when run '
        'again, so the forward pass is not deterministic'
    )


def check_logits(
    model: nn.Module,
    inputs: torch.Tensor,
    logits: torch.Tensor,
    context: ContextFactory = nullcontext,
) -> None:
    """Refuse class scores that hold NaN/Inf, naming the first source.

    Args:
        model (nn.Module): The classifier.
        inputs (torch.Tensor): The batch the scores come from.
        logits (torch.Tensor): The scores ``(B, num_classes)``.
        context (callable): The context of that forward (autocast).
            Defaults to ``nullcontext``.

    Raises:
        NumericalError: The scores are not finite.
    """
    if non_finite(logits):
        where = locate_non_finite(model, inputs, context)
        raise NumericalError(
            f'The class scores hold {_count(logits)}, so every map would be '
            f'NaN. It first appears in {where}.'
        )


def check_gradient(grad: torch.Tensor, layer: str) -> None:
    """Refuse a target-layer gradient that holds NaN/Inf.

    Called after the class scores were found finite, so the backward pass
    itself produced it.

    Args:
        grad (torch.Tensor): The class score's gradient at the layer.
        layer (str): The layer's name.

    Raises:
        NumericalError: The gradient is not finite.
    """
    if non_finite(grad):
        raise NumericalError(
            f'The gradient of the class score at target layer {layer!r} '
            f'holds {_count(grad)} although the class scores are finite: the '
            'backward pass overflows (under float16 autocast: run in '
            'float32).'
        )


def check_maps(maps: Dict[str, torch.Tensor], layers: Sequence[str]) -> None:
    """Refuse finished maps that hold NaN/Inf.

    Args:
        maps (dict): ``{method: (B, K, H, W)}`` maps.
        layers (Sequence[str]): The target layers, for the message.

    Raises:
        NumericalError: Naming the first method whose map is not finite.
    """
    for name, values in maps.items():
        if non_finite(values):
            raise NumericalError(
                f'The {name} map holds {_count(values)} although the class '
                'scores are finite: the activations at target layer(s) '
                f'{list(layers)} are not finite.'
            )


def blank_flags(maps: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """Per method, which ``(B, K)`` maps are zero everywhere.

    A finished map is zero everywhere exactly when the map was ``<= 0``
    everywhere before its ReLU (or constant, which normalisation also maps
    to zero): no positive evidence for that class at that layer.

    Args:
        maps (dict): ``{method: (B, K, H, W)}`` maps in ``[0, 1]``.

    Returns:
        dict: ``{method: (B, K) bool array}``.
    """
    return {
        name: (values.flatten(2).amax(-1) <= 0).cpu().numpy()
        for name, values in maps.items()
    }
