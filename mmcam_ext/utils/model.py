"""Model helpers shared by resolvers, methods and the engine.

What every layer of the package needs to know about an MMPretrain
classifier, and nothing about CAMs: its class scores, its feature extractor
and its modules by name.
"""

import difflib
import hashlib
import inspect
from typing import Any, Callable, Mapping, Optional, Tuple, TypeVar

import torch
from torch import nn

from ..errors import LayerNotFoundError, ModelError

__all__ = [
    'classifier_logits',
    'ClassifierLogits',
    'feature_root',
    'get_module',
    'takes_mode',
    'unwrap_model',
    'num_extra_tokens',
    'expand_path',
    'nearest_listed',
    'model_fingerprint',
]

_V = TypeVar('_V')


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP / MMEngine wrapper (``model.module``).

    Args:
        model (nn.Module): A model, possibly wrapped.

    Returns:
        nn.Module: The wrapped module, or ``model`` itself.
    """
    return getattr(model, 'module', model)


def takes_mode(model: nn.Module) -> bool:
    """Whether ``model.forward`` has MMPretrain's ``mode`` argument.

    Asked up front rather than by catching ``TypeError``, which would also
    catch an error raised inside the forward and run it a second time.

    Args:
        model (nn.Module): The model.

    Returns:
        bool: ``True`` if ``forward`` accepts ``mode``.
    """
    try:
        return 'mode' in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def classifier_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Class scores ``(B, num_classes)`` of an MMPretrain classifier.

    ``mode='tensor'`` gives the head's raw scores. Heads with several outputs
    (Conformer's conv and transformer heads) are summed, as their
    ``predict`` does.

    Args:
        model (nn.Module): An MMPretrain classifier or a module returning
            class scores.
        inputs (torch.Tensor): Preprocessed batch ``(B, C, H, W)``.

    Returns:
        torch.Tensor: ``(B, num_classes)`` scores.

    Raises:
        ModelError: When the output is not a ``(B, num_classes)`` tensor.
    """
    out = model(inputs, mode='tensor') if takes_mode(model) else model(inputs)
    if isinstance(out, (tuple, list)):
        tensors = [o for o in out if isinstance(o, torch.Tensor)]
        if not tensors:
            raise ModelError(
                f'{type(model).__name__} returned no tensor of class scores '
                f'(got {type(out).__name__}); CAMs need a classifier.'
            )
        if all(t.shape == tensors[0].shape for t in tensors):
            out = sum(tensors)
        else:
            out = tensors[-1]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = (
            tuple(out.shape)
            if isinstance(out, torch.Tensor)
            else type(out).__name__
        )
        raise ModelError(
            f'{type(model).__name__} returned {shape}, not class scores of '
            'shape (B, num_classes): CAMs need an image classifier (e.g. '
            'ImageClassifier or TimmClassifier), not a self-supervised or '
            'feature model.'
        )
    return out


class ClassifierLogits(nn.Module):
    """Presents an MMPretrain classifier as ``x -> (B, num_classes)``.

    pytorch-grad-cam (and plain-torch references in tests and benchmarks)
    expect a module whose output is the class scores.

    Args:
        model (nn.Module): The classifier.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of ``x``, see :func:`classifier_logits`."""
        return classifier_logits(self.model, x)


def feature_root(model: nn.Module) -> Tuple[str, nn.Module]:
    """The feature extractor of a classifier and its module-name prefix.

    Args:
        model (nn.Module): A classifier (``backbone`` for MMPretrain's
            ``ImageClassifier``, ``model`` for ``TimmClassifier``).

    Returns:
        tuple[str, nn.Module]: The prefix (``'backbone'``, ``'model'`` or
        ``''``) and the module.
    """
    for attr in ('backbone', 'model'):
        sub = getattr(model, attr, None)
        if isinstance(sub, nn.Module):
            return attr, sub
    return '', model


def num_extra_tokens(backbone: nn.Module) -> int:
    """Extra (cls, distillation, register) tokens a backbone declares.

    Reads MMPretrain's ``num_extra_tokens`` or timm's ``num_prefix_tokens``.

    Args:
        backbone (nn.Module): The feature extractor.

    Returns:
        int: The count, 0 when the backbone declares none.
    """
    for attr in ('num_extra_tokens', 'num_prefix_tokens'):
        value = getattr(backbone, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def get_module(model: nn.Module, name: str) -> nn.Module:
    """Look a module up by name; on a miss, list close matches.

    Args:
        model (nn.Module): The model.
        name (str): A name as in ``model.named_modules()``.

    Returns:
        nn.Module: The module.

    Raises:
        LayerNotFoundError: Naming close matches.
    """
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, list(modules), n=8, cutoff=0.5)
    hint = (
        ('Close matches: ' + ', '.join(close))
        if close
        else ('List the layer names with model.named_modules().')
    )
    raise LayerNotFoundError(
        f'No layer named {name!r} in {type(model).__name__}. {hint}'
    )


def expand_path(model: nn.Module, prefix: str, path: str) -> Optional[str]:
    """Full module name for a facts path, or ``None`` if it does not exist.

    Negative integer parts index from the end of a container, so a fact
    holds for every depth of a family (``layers.-1`` is the last block of a
    12- or a 24-block ViT). A leading ``/`` starts at the classifier instead
    of the feature extractor.

    Args:
        model (nn.Module): The classifier (or the module ``prefix`` is in).
        prefix (str): Name of the feature extractor (``'backbone'``), or
            ``''``.
        path (str): The facts path.

    Returns:
        str | None: The module name, or ``None`` when it does not exist.
    """
    if path.startswith('/'):
        prefix, path = '', path[1:]
    # Any: a part may name any attribute (checked below), and containers
    # are sized and indexed by duck typing.
    module: Any = model.get_submodule(prefix) if prefix else model
    names = [prefix] if prefix else []
    for part in path.split('.'):
        if part.lstrip('-').isdigit():
            index = int(part)
            if not hasattr(module, '__len__') or not (
                -len(module) <= index < len(module)
            ):
                return None
            part = str(index % len(module))
        module = (
            getattr(module, part, None)
            if not part.isdigit()
            else (module[int(part)])
        )
        if not isinstance(module, nn.Module):
            return None
        names.append(part)
    return '.'.join(names)


def nearest_listed(
    obj: Any,
    table: Mapping[str, _V],
    key: Callable[[type], str] = lambda cls: cls.__name__,
) -> Optional[_V]:
    """The entry of ``obj``'s class or of its nearest listed parent class.

    One MRO walk for every table keyed by class (backbone facts, attention
    adapters), so a user's subclass of a listed backbone or attention
    module is treated as its parent.

    Args:
        obj (Any): The object whose class is looked up.
        table (Mapping[str, Any]): Entries keyed by ``key(cls)``.
        key (Callable[[type], str]): The key of a class. Defaults to its
            ``__name__``.

    Returns:
        Any: The entry, or ``None`` when no class in the MRO is listed.
    """
    for cls in type(obj).__mro__:
        entry = table.get(key(cls))
        if entry is not None:
            return entry
    return None


#: Values of each tensor that enter :func:`model_fingerprint`.
FINGERPRINT_VALUES = 8


def model_fingerprint(model: nn.Module) -> str:
    """A short hash that tells two models' weights apart.

    Hashes the model's class, and for every ``state_dict`` entry its name,
    shape, dtype and its first :data:`FINGERPRINT_VALUES` values (as
    float16, so the same checkpoint gives the same hash on any device). Two
    dumps of the same weights agree; a different architecture, head size or
    checkpoint gives another hash (weights that differ only past the first
    values of every tensor would collide: a fingerprint, not a checksum).
    Cost: one small copy per tensor.

    Args:
        model (nn.Module): The model (wrappers are unwrapped).

    Returns:
        str: 16 hex digits.
    """
    model = unwrap_model(model)
    digest = hashlib.sha1(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        head = tensor.detach().flatten()[:FINGERPRINT_VALUES]
        if head.is_floating_point():
            head = head.to(torch.float16)
        digest.update(f'{name}{tuple(tensor.shape)}{tensor.dtype}'.encode())
        digest.update(repr(head.cpu().tolist()).encode())
    return digest.hexdigest()[:16]
