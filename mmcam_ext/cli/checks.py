"""Checks of command-line arguments that need no model.

They run first, so a wrong flag fails in well under a second, before a
config is read or a checkpoint loaded, and before any output folder
exists.
"""

import argparse
import math
import os
import os.path as osp
import sys
import tempfile
from typing import Callable, Union

from ..errors import InputError, OutputError

__all__ = [
    'int_at_least',
    'positive_float',
    'check_display',
    'check_output_dir',
    'check_save_path',
    'ensure_dir',
]

# Platforms whose windows need an X11 or Wayland display.
_DISPLAY_PLATFORMS = ('linux', 'freebsd', 'openbsd', 'netbsd', 'sunos')


def positive_float(text: str) -> float:
    """An argparse ``type`` for finite numbers ``> 0``.

    Args:
        text (str): The argument.

    Returns:
        float: The number; argparse reports a bad one with usage and exit
        code 2.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a number, got {text!r}'
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum``.

    Args:
        minimum (int): Smallest allowed value.

    Returns:
        callable: Parses a string; argparse reports its error with usage
        and exit code 2.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected an integer, got {text!r}'
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'must be >= {minimum}, got {value}'
            )
        return value

    parse.__name__ = f'integer >= {minimum}'
    return parse


def class_arg(text: str) -> Union[int, str]:
    """A ``--target-category`` entry: a class index or a class name.

    Args:
        text (str): The command-line word.

    Returns:
        int | str: The index, or the name (looked up once the model's
        classes are known).

    Raises:
        argparse.ArgumentTypeError: A number that is not an integer.
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        float(text)
    except ValueError:
        return text
    raise argparse.ArgumentTypeError(
        f'{text!r} is not a class index (an integer) or a class name'
    )


def check_display() -> None:
    """Refuse ``--show`` where no window can open (it would block forever).

    Checks the display variables, then that matplotlib's backend is an
    interactive one (``Agg`` has no window: MMEngine's ``show`` would wait
    in its event loop for a key that never comes).

    Raises:
        InputError: Naming what is missing.
    """
    if sys.platform.startswith(_DISPLAY_PLATFORMS) and not (
        os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')
    ):
        raise InputError(
            '--show needs a display, but DISPLAY and WAYLAND_DISPLAY are '
            'unset (no window can open here); drop --show: the grids are '
            'written to --out-dir anyway.'
        )
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    backend = matplotlib.get_backend()
    interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    if backend.lower() not in interactive and not backend.startswith(
        'module://'
    ):
        raise InputError(
            f'--show needs an interactive matplotlib backend, but the '
            f'backend is {backend!r} (MPLBACKEND='
            f'{os.environ.get("MPLBACKEND", "unset")}), which cannot open '
            'a window; set MPLBACKEND=TkAgg (or QtAgg) or drop --show.'
        )


def _existing_ancestor(path: str) -> str:
    path = osp.abspath(path)
    while not osp.exists(path):
        path = osp.dirname(path)
    return path


def check_output_dir(path: str, flag: str = '--out-dir') -> None:
    """A folder that exists, or can be created, and can be written to.

    Nothing is created here (see :func:`ensure_dir`).

    Args:
        path (str): The folder.
        flag (str): The flag that named it, for the message.
            Defaults to ``'--out-dir'``.

    Raises:
        OutputError: It is a file, lies under a file, or is not writable.
    """
    if osp.exists(path) and not osp.isdir(path):
        raise OutputError(
            f'{flag} {path!r} is a file, not a folder; choose another {flag}.'
        )
    ancestor = _existing_ancestor(path)
    if not osp.isdir(ancestor):
        raise OutputError(
            f'{flag} {path!r} cannot be created: {ancestor!r} is a file.'
        )
    # Tried, not asked: os.access says yes to root everywhere and knows
    # nothing of read-only mounts or pseudo file systems (/proc, /sys). A
    # file is created and removed at once, before any model is built.
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix='.mmcam-probe-'):
            pass
    except OSError as err:
        raise OutputError(
            f'{flag} {path!r} is not writable: a file cannot be created in '
            f'{ancestor!r} ({err.strerror or err}); choose another {flag}.'
        ) from None


def check_save_path(path: str) -> None:
    """A ``--save-path`` OpenCV can write, in a folder that can be made.

    Args:
        path (str): The image file to write.

    Raises:
        OutputError: A folder, an extension OpenCV cannot encode, or an
            unwritable folder.
    """
    import cv2

    if osp.isdir(path):
        raise OutputError(
            f'--save-path {path!r} is a folder; give a file name such as '
            'cam.png, or use --out-dir for a folder.'
        )
    ext = osp.splitext(path)[1]
    if not ext or not cv2.haveImageWriter(path):
        raise OutputError(
            f'--save-path {path!r}: no image writer for '
            f'{ext or "a name without extension"!r}; use .png or .jpg.'
        )
    check_output_dir(osp.dirname(osp.abspath(path)), '--save-path folder')


def ensure_dir(path: str, flag: str = '--out-dir') -> None:
    """Create a folder (and its parents) just before the first write.

    Args:
        path (str): The folder.
        flag (str): The flag that named it, for the message.
            Defaults to ``'--out-dir'``.

    Raises:
        OutputError: It cannot be created.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f'Cannot create {flag} {path!r}: {err.strerror or err}.'
        ) from None
