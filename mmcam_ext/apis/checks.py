"""Checks of the arguments a user passes to the engine and the inferencer.

Each function takes a user value, returns it in the one form the engine
uses, or raises a typed :class:`~mmcam_ext.errors.MMCamError` naming the
argument as the API spells it (``methods``, ``targets``, ``topk``...).
They run before any forward pass, so a wrong argument costs nothing.
"""

import difflib
import numbers
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError, MethodError, TargetError
from ..methods.base import BaseCAMMethod
from ..methods.builder import build_method

__all__ = [
    'check_methods',
    'check_int',
    'check_topk',
    'check_targets',
    'check_device',
    'class_lookup',
    'class_indices',
    'as_list',
]


def check_methods(methods: Any) -> List[BaseCAMMethod]:
    """Build the methods a user asked for, refusing empty or odd lists.

    Args:
        methods (str | BaseCAMMethod | Sequence): One method (a name, a
            config dict or an instance) or a sequence of them. A string is
            one method name, never a sequence of letters.

    Returns:
        list[BaseCAMMethod]: Built methods, in the given order.

    Raises:
        MethodError: Empty, of a wrong type, unknown or listed twice.
    """
    if isinstance(methods, (str, Mapping, BaseCAMMethod)):
        methods = [methods]
    if methods is None or not isinstance(methods, (list, tuple)):
        raise MethodError(
            'methods must be a method name, a config dict, a method '
            f'instance or a list of them, got {type(methods).__name__}.',
            option='methods',
        )
    if not methods:
        raise MethodError(
            "methods is empty: give at least one, e.g. ['gradcam'].",
            option='methods',
        )
    built = []
    for method in methods:
        if isinstance(method, BaseCAMMethod):
            built.append(method)
        elif isinstance(method, (str, Mapping)):
            built.append(build_method(method))
        else:
            raise MethodError(
                f'methods holds {method!r} ({type(method).__name__}); give '
                'method names such as gradcam, config dicts or method '
                'instances.',
                option='methods',
            )
    names = [m.name for m in built]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MethodError(
            f'methods lists {", ".join(twice)} twice: {names}.',
            option='methods',
        )
    return built


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer argument of at least ``minimum`` (bools refused).

    Args:
        value (Any): The user's value.
        name (str): The argument's API name, for the message.
        minimum (int): Smallest allowed value.

    Returns:
        int: The value.

    Raises:
        InputError: Not an integer, or too small.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(
            f'{name} must be an integer, got {value!r}.', option=name
        )
    if value < minimum:
        raise InputError(
            f'{name} must be >= {minimum}, got {value}.', option=name
        )
    return int(value)


def check_topk(topk: Any, num_classes: int) -> int:
    """``topk`` within ``[1, num_classes]``.

    Args:
        topk (Any): The user's value.
        num_classes (int): Classes of the model's head.

    Returns:
        int: The value.

    Raises:
        TargetError: Not an integer in range.
    """
    if (
        isinstance(topk, bool)
        or not isinstance(topk, numbers.Integral)
        or not 1 <= int(topk) <= num_classes
    ):
        raise TargetError(
            f'topk must be an integer in [1, {num_classes}] (the classes of '
            f'this model), got {topk!r}.',
            option='topk',
        )
    return int(topk)


def _target_array(targets: Any, num_classes: Optional[int]) -> np.ndarray:
    """``targets`` as an integer array, or an error saying why not."""
    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().numpy()
    try:
        arr = np.asarray(targets)
    except ValueError:  # ragged nested lists
        raise TargetError(
            f'targets {targets!r} is ragged: give the same number of classes '
            'for every sample, as a (B, K) array.',
            option='targets',
        ) from None
    if arr.size == 0:
        raise TargetError(
            f'targets {targets!r} holds no class (shape {arr.shape}): give '
            'at least one class per sample, or None for the top-k '
            'predictions.',
            option='targets',
        )
    if arr.dtype.kind == 'O' and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool)
        for v in arr.ravel()
    ):
        try:  # Python ints beyond int64 make an object array
            arr = arr.astype(np.int64)
        except OverflowError:
            big = max(arr.ravel(), key=lambda v: abs(int(v)))
            raise TargetError(
                f'Target class {big} is out of range{_range(num_classes)}.',
                option='targets',
            ) from None
    if arr.dtype.kind not in 'iu':
        raise TargetError(
            f'targets must be integer class indices, got {targets!r} '
            f'(dtype {arr.dtype}); a float or bool is never rounded to a '
            'class.',
            option='targets',
        )
    if arr.ndim > 2:
        raise TargetError(
            f'targets has shape {arr.shape}; give an int, one class per '
            'sample (B,) or (B, K) classes.',
            option='targets',
        )
    return arr.astype(np.int64)


def _range(num_classes: Optional[int]) -> str:
    if num_classes is None:
        return ' (not a class index of any model)'
    return f' [0, {num_classes - 1}] (the classes of this model)'


def check_targets(
    targets: Any,
    batch: int,
    num_classes: Optional[int],
    unit: str = 'samples',
) -> Union[torch.Tensor, None]:
    """User targets as a ``(B, K)`` long tensor of classes in range.

    Args:
        targets (Any): ``None``, an int for every sample, one per sample
            ``(B,)`` or ``(B, K)`` classes (lists, arrays or tensors).
        batch (int): Samples in the batch.
        num_classes (int, optional): Classes of the model's head; None
            checks only that classes are >= 0.
        unit (str): What the samples are, for messages. Defaults to
            ``'samples'``.

    Returns:
        torch.Tensor | None: ``(B, K)`` int64 on the CPU, or ``None``.

    Raises:
        TargetError: Empty, ragged, non-integer, of the wrong length or out
            of range.
    """
    if targets is None:
        return None
    arr = _target_array(targets, num_classes)
    if arr.ndim == 0:
        arr = np.full((batch, 1), int(arr))
    elif arr.ndim == 1:
        if len(arr) != batch:
            raise TargetError(
                f'targets has {len(arr)} entries for {batch} {unit}: give '
                f'one class for all {unit}, one per {unit.rstrip("s")} or '
                '(N, K) classes.',
                option='targets',
            )
        arr = arr[:, None]
    elif arr.shape[0] != batch:
        raise TargetError(
            f'targets has {arr.shape[0]} rows for {batch} {unit}.',
            option='targets',
        )
    limit = np.iinfo(np.int64).max if num_classes is None else num_classes
    bad = arr[(arr < 0) | (arr >= limit)]
    if bad.size:
        raise TargetError(
            f'Target class {int(bad[0])} is out of range'
            f'{_range(num_classes)}.',
            option='targets',
        )
    return torch.from_numpy(arr)


def check_device(device: Union[str, torch.device]) -> torch.device:
    """A device that exists and works on this machine.

    A tiny tensor is made on it, so a ``'cuda'`` without a GPU (or a GPU
    index beyond the ones present) fails here, with the reason, instead of
    deep in the first forward pass.

    Args:
        device (str | torch.device): E.g. ``'cpu'``, ``'cuda:1'``.

    Returns:
        torch.device: The parsed device.

    Raises:
        InputError: Not a device name, or not usable here.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f'device {device!r} is not a name torch knows; use e.g. '
            "'cpu', 'cuda' or 'cuda:1'.",
            option='device',
        ) from None
    if dev.type == 'cpu':
        return dev
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as err:
        reason = ' '.join(str(err).split()).split('. ')[0]
        raise InputError(
            f'device {str(device)!r} is not usable on this machine '
            f'({reason}); use device cpu or a device that exists.',
            option='device',
        ) from None
    return dev


def class_lookup(classes: Optional[Sequence[str]]) -> Callable[[str], int]:
    """A function from a class name (``'tench'``) to its index.

    A name must be one of the model's classes (``dataset_meta['classes']``
    of its checkpoint or config): exactly, or else ignoring case, or one of
    the comma-separated synonyms of an ImageNet-style name (``'tench'`` for
    ``'tench, Tinca tinca'``), when that is unambiguous. The table is built
    once, however many names are then looked up.

    Args:
        classes (Sequence[str], optional): The model's class names; None
            when it has none.

    Returns:
        Callable[[str], int]: Name -> index. It raises
        :class:`TargetError` for a name the model does not have (with close
        matches), a name of several classes (with their indices), or any
        name when the model has no class names.
    """
    names = list(classes or [])
    folded: Dict[str, List[int]] = {}
    for index, name in enumerate(names):
        # ImageNet-style names list synonyms: 'tench, Tinca tinca'.
        keys = {str(name).lower()}
        keys.update(part.strip().lower() for part in str(name).split(','))
        for key in keys - {''}:
            folded.setdefault(key, []).append(index)

    def lookup(item: str) -> int:
        if not names:
            raise TargetError(
                f'Target class {item!r} is a name, but this model has no '
                "class names (no dataset_meta['classes'] in its checkpoint "
                'or config); give class indices.',
                option='targets',
            )
        exact = [i for i, name in enumerate(names) if name == item]
        found = exact or folded.get(item.lower(), [])
        if len(found) == 1:
            return found[0]
        if found:
            raise TargetError(
                f'Target class {item!r} names {len(found)} classes of this '
                f'model ({", ".join(map(str, found))}); give the index.',
                option='targets',
            )
        close = difflib.get_close_matches(
            item.lower(), list(folded), n=5, cutoff=0.6
        )
        hint = (
            'close matches: '
            + '; '.join(dict.fromkeys(names[folded[c][0]] for c in close))
            if close
            else f'it has {len(names)}, e.g. ' + '; '.join(map(str, names[:3]))
        )
        raise TargetError(
            f'Target class {item!r} is not a class of this model ({hint}).',
            option='targets',
        )

    return lookup


def class_indices(
    wanted: Sequence[Union[int, str]], classes: Optional[Sequence[str]]
) -> List[Any]:
    """Class indices for indices or class names, in order.

    Names are looked up with :func:`class_lookup`; indices pass through
    (their range is checked with the targets, against the head).

    Args:
        wanted (Sequence[int | str]): Indices and names.
        classes (Sequence[str], optional): The model's class names; None
            when it has none.

    Returns:
        list: One index per entry of ``wanted``.

    Raises:
        TargetError: See :func:`class_lookup`.
    """
    lookup = class_lookup(classes)
    return [lookup(w) if isinstance(w, str) else w for w in wanted]


def as_list(value: Union[str, Sequence[str], None]) -> List[str]:
    """One name or several as a list (a string is one name).

    Args:
        value (str | Sequence[str], optional): E.g. ``target_layers``.

    Returns:
        list[str]: The names; ``[]`` for None.
    """
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
