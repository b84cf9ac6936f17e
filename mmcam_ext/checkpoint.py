"""Load MMEngine checkpoints under ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: its
restricted unpickler only rebuilds tensors and plain containers, so a file
cannot run code while it loads. Checkpoints saved by the MMEngine Runner also
hold the message hub's ``HistoryBuffer`` objects, which carry numpy arrays,
scalars and dtypes, and are refused. Turning ``weights_only`` off would let
any downloaded checkpoint run arbitrary code, so instead we allow-list
exactly the globals a Runner checkpoint needs (found by inspecting real
Runner checkpoints, last and ``save_best``, with
``torch.serialization.get_unsafe_globals_in_checkpoint``):

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray._reconstruct``
  and ``numpy._core.multiarray.scalar`` (plus their numpy 1.x names
  ``numpy.core.multiarray.*``, so files saved with numpy 1 load too);
* the concrete dtype classes of ``numpy.dtypes`` (``Float64DType``...):
  ``numpy.dtype('f8')`` returns one, and the unpickler only restores the
  state of allow-listed types. They never appear as pickle globals, so the
  static scan does not list them;
* ``builtins.getattr``, which the pickle uses to fetch
  ``HistoryBuffer.min``/``max``/``mean``/``current``. The real ``getattr``
  would let a payload walk from any object to ``os.system``, so the name is
  mapped to :func:`history_buffer_getattr`, which only returns plain methods
  of ``HistoryBuffer``.

:func:`register_safe_globals` runs when ``mmcam_ext`` is imported, so
MMEngine's own ``load_checkpoint``, ``runner.load_checkpoint``/``resume`` and
``tools/test.py`` with ``custom_imports=dict(imports=['mmcam_ext'])`` work.
:func:`load_checkpoint` adds errors that name the file and, for a refused
payload, the forbidden global.
"""

import _compat_pickle
import importlib
import inspect
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import nn

from .errors import (
    CheckpointError,
    PartialCheckpointWarning,
    UnsafeCheckpointError,
)

__all__ = [
    'CheckpointError',
    'UnsafeCheckpointError',
    'SAFE_GLOBALS',
    'history_buffer_getattr',
    'register_safe_globals',
    'load_checkpoint',
    'forbidden_globals',
    'KeyMismatch',
    'compare_keys',
]

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling.

    Pickle stores a function defined in a class body (``HistoryBuffer.min``)
    as ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr``
    would also allow ``getattr(obj, '__class__')`` and similar chains that
    reach ``os.system``; this version only hands out ``HistoryBuffer``'s own
    public functions.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    member = vars(HistoryBuffer).get(name) if obj is HistoryBuffer else None
    if name.startswith('_') or not inspect.isfunction(member):
        raise pickle.UnpicklingError(
            f'Refused GLOBAL builtins.getattr on {obj!r}, {name!r}: while '
            'loading a checkpoint only public methods of mmengine '
            'HistoryBuffer may be fetched.'
        )
    return member


def _numpy_multiarray() -> Any:
    """numpy's ``multiarray`` module (``numpy._core`` in 2.x)."""
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy < 2
        return importlib.import_module('numpy.core.multiarray')


def _numpy_dtype_classes() -> List[type]:
    """Concrete dtype classes (numpy >= 1.25 has ``numpy.dtypes``)."""
    module = getattr(np, 'dtypes', None)
    classes = vars(module).values() if module is not None else ()
    return [
        c
        for c in classes
        if inspect.isclass(c) and issubclass(c, np.dtype) and c is not np.dtype
    ]


def _safe_globals() -> List[SafeGlobal]:
    multiarray = _numpy_multiarray()
    entries: List[SafeGlobal] = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (history_buffer_getattr, 'builtins.getattr'),
    ]
    entries += [
        (cls, f'numpy.dtypes.{cls.__name__}') for cls in _numpy_dtype_classes()
    ]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    return entries


#: Globals allow-listed for ``weights_only`` loads, as ``(object, name)``.
SAFE_GLOBALS: List[SafeGlobal] = _safe_globals()


def register_safe_globals() -> None:
    """Allow-list :data:`SAFE_GLOBALS` for every ``torch.load`` call.

    Idempotent. ``weights_only`` itself is never changed.
    """
    current = set(torch.serialization.get_safe_globals())
    missing = [g for g in SAFE_GLOBALS if g not in current]
    if missing:
        torch.serialization.add_safe_globals(missing)


def forbidden_globals(
    path: str, error: Optional[BaseException] = None
) -> List[str]:
    """Globals in a checkpoint that the restricted unpickler refuses.

    Reads the pickle statically (nothing is executed). Falls back to the
    global named in ``error`` for files not in torch's zip format.
    """
    names: List[str] = []
    if zipfile.is_zipfile(path):
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # unreadable zip: rely on the error text below
            names = []
    if not names and error is not None:
        names = re.findall(r'GLOBAL ([\w.]+)', str(error))
    return sorted({_python3_name(n) for n in names})


def _python3_name(name: str) -> str:
    """``commands.Popen`` -> ``subprocess.Popen``, ``exec`` ->
    ``builtins.exec``: pickle protocol 2 stores Python 2 names and torch's
    messages drop ``builtins.``."""
    module, _, attr = name.rpartition('.')
    module = module or 'builtins'
    if (module, attr) in _compat_pickle.NAME_MAPPING:
        module, attr = _compat_pickle.NAME_MAPPING[(module, attr)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f'{module}.{attr}'


def _read(path: str, map_location: Any) -> Any:
    """``torch.load`` with ``weights_only=True`` and clear errors."""
    if os.path.isdir(path):
        raise CheckpointError(
            f'Checkpoint {path!r} is a directory; give the .pth file in it.'
        )
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint file not found: {path!r}.')
    register_safe_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        bad = forbidden_globals(path, err)
        if bad:
            raise UnsafeCheckpointError(
                f'Refusing to load checkpoint {path!r}: it references '
                f'{", ".join(bad)}, which is not on the weights_only '
                'allow-list and could run code when unpickled. Nothing from '
                'it was executed. Only load it if you trust its source and '
                'the global is a plain data type; then allow-list it with '
                'torch.serialization.add_safe_globals.'
            ) from err
        raise _not_a_checkpoint(path, err) from err
    except Exception as err:  # any other file type: torch fails anywhere
        raise _not_a_checkpoint(path, err) from err


def _not_a_checkpoint(path: str, err: BaseException) -> CheckpointError:
    """Error naming the file, without torch's "retry unsafely" advice."""
    reason = str(err) or type(err).__name__
    core = re.search(r'WeightsUnpickler error:\s*(.+?)\n\n', reason, re.S)
    reason = core.group(1).strip() if core else reason
    reason = ' '.join(reason.split())[:200]
    return CheckpointError(
        f'{path!r} is not a readable PyTorch checkpoint (corrupt, truncated '
        f'or another file type): {reason}'
    )


@dataclass
class KeyMismatch:
    """How a state dict differs from a model's own.

    Args:
        total (int): Entries of the model's state dict (without BN
            ``num_batches_tracked`` counters).
        missing (list[str]): Model keys the file lacks (BN
            ``num_batches_tracked`` counters are not counted, as in
            MMEngine). Defaults to ``[]``.
        unexpected (list[str]): File keys the model does not have.
            Defaults to ``[]``.
        shapes (list[tuple]): ``(key, file shape, model shape)`` of keys
            present on both sides with different shapes. Defaults to ``[]``.
    """

    total: int
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shapes: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self, path: str, model_name: str) -> str:
        """One paragraph: counts and a few key names on each side.

        Args:
            path (str): The checkpoint, as the user named it.
            model_name (str): The model's class name.

        Returns:
            str: The description.
        """
        loaded = self.total - len(self.missing)
        loaded -= sum(
            not k.endswith('num_batches_tracked') for k, *_ in self.shapes
        )
        parts = []
        if self.missing:
            parts.append(
                f'{len(self.missing)} model key(s) missing from the file '
                f'({_few(self.missing)})'
            )
        if self.unexpected:
            parts.append(
                f'{len(self.unexpected)} file key(s) not in the model '
                f'({_few(self.unexpected)})'
            )
        if self.shapes:
            key, got, want = self.shapes[0]
            parts.append(
                f'{len(self.shapes)} key(s) of another shape ({key}: file '
                f'{tuple(got)}, model {tuple(want)})'
            )
        return (
            f'Checkpoint {path!r} does not fit {model_name}: {loaded} of '
            f'{self.total} model weights match; ' + '; '.join(parts) + '.'
        )


def _few(keys: List[str], n: int = 3) -> str:
    shown = ', '.join(keys[:n])
    return shown + (', ...' if len(keys) > n else '')


def compare_keys(model: nn.Module, state: Dict[str, Any]) -> KeyMismatch:
    """Compare a state dict (``module.`` prefixes stripped) with a model's.

    Args:
        model (nn.Module): The model to load into.
        state (dict): The checkpoint's state dict.

    Returns:
        KeyMismatch: Empty (falsy) when every key and shape matches.
    """
    own = model.state_dict()
    theirs = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    counted = [k for k in own if not k.endswith('num_batches_tracked')]
    report = KeyMismatch(total=len(counted))
    for key, value in own.items():
        if key not in theirs:
            if key in counted:
                report.missing.append(key)
            continue
        other = theirs[key]
        if isinstance(other, torch.Tensor) and other.shape != value.shape:
            report.shapes.append((key, other.shape, value.shape))
    report.unexpected = [k for k in theirs if k not in own]
    return report


def load_checkpoint(
    model: nn.Module,
    path: str,
    map_location: Any = 'cpu',
    strict: bool = True,
) -> Dict[str, Any]:
    """Load a checkpoint into ``model`` without ever unpickling code.

    Accepts MMEngine checkpoints (``{'state_dict': ..., 'meta': ...}``) and
    plain state dicts; a ``module.`` prefix from DDP is stripped.

    Args:
        model (nn.Module): The module to load into (a DDP wrapper is
            unwrapped).
        path (str): Local checkpoint file.
        map_location (Any): Same as ``torch.load``. Defaults to ``'cpu'``.
        strict (bool): Refuse a file whose keys or shapes differ from the
            model's (another architecture, another head size): the model
            would not be the one in the file, and its CAMs would explain
            partly random weights. ``False`` loads the matching part and
            warns (:class:`PartialCheckpointWarning`) with the same
            details. Defaults to True.

    Returns:
        dict: The loaded checkpoint (``meta`` etc. are left in it).

    Raises:
        CheckpointError: Missing, unreadable or non-checkpoint file, or
            (strict) keys that do not match; the message names the file and
            a few keys on both sides.
        UnsafeCheckpointError: The file references a forbidden global.
    """
    checkpoint = _read(path, map_location)
    state = (
        checkpoint.get('state_dict', checkpoint)
        if isinstance(checkpoint, dict)
        else None
    )
    if not isinstance(state, dict) or not any(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(
            f'{path!r} loads, but holds no state dict of tensors (got '
            f'{type(checkpoint).__name__}); expected a dict of tensors or '
            "{'state_dict': {...}}."
        )
    model = getattr(model, 'module', model)
    mismatch = compare_keys(model, state)
    if mismatch:
        text = mismatch.describe(path, type(model).__name__)
        if strict:
            raise CheckpointError(
                f'{text} CAMs of a model loaded from it would explain partly '
                'random weights: use the config it was trained with, or '
                'pass strict=False to load the matching part anyway.'
            )
        warnings.warn(
            f'{text} Loaded the matching part only (strict=False); the '
            'rest keeps its initial weights.',
            PartialCheckpointWarning,
            stacklevel=2,
        )
    try:
        _load_checkpoint_to_model(model, checkpoint, False, 'silent')
    except RuntimeError as err:
        raise CheckpointError(
            f'Weights in {path!r} do not fit {type(model).__name__}: {err}'
        ) from err
    print_log(f'Loaded checkpoint {path}', logger='current')
    return checkpoint


# Importing mmcam_ext (custom_imports in a config) makes MMEngine's own
# load paths accept Runner checkpoints.
register_safe_globals()
