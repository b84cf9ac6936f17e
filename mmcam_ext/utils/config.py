"""Where the plugin's own configs and tools are, in a wheel or a clone.

MMPretrain ships its ``configs/`` and ``tools/`` inside the package, under
``mmpretrain/.mim/``; ``mim run`` and MMPretrain's own helpers look there.
mmcam_ext does the same: building a wheel copies the top-level ``configs/``
and ``tools/`` into ``mmcam_ext/.mim/`` (``setup.py``), and an editable
install links them there. Code in the package finds them only through this
module, never by a path relative to the repository.

MMEngine's ``_base_ = 'pkg::path'`` inheritance accepts only OpenMMLab's own
packages (a fixed table in ``mmengine.config.utils``):
``'mmcam_ext::demo_cam.py'`` fails with "mmengine does not support to load
mmcam_ext config". What works instead: an absolute path from
:func:`config_path` (``python -m mmcam_ext config demo_cam.py`` prints it)
as ``_base_``, or ``Config.fromfile(config_path(...))`` in Python.
"""

from pathlib import Path
from typing import List

from ..errors import ConfigError

__all__ = ['mim_root', 'config_path', 'list_configs', 'tool_path']


def mim_root() -> Path:
    """The ``mmcam_ext/.mim`` folder of this installation.

    Returns:
        Path: The folder (it holds ``configs/`` and ``tools/``).
    """
    return Path(__file__).resolve().parents[1] / '.mim'


def _find(kind: str, rel: str) -> Path:
    """The file ``rel`` below ``.mim/<kind>``, or an error listing them."""
    base = mim_root() / kind
    path = base / rel
    if path.is_file():
        return path
    if not base.is_dir():
        raise ConfigError(
            f'mmcam_ext has no {kind}/ folder at {base}: the package was '
            'neither installed from a wheel nor with `pip install -e .` '
            f'(which put {kind}/ there). Reinstall mmcam_ext; in a clone, '
            'run `pip install -e .`.'
        )
    raise ConfigError(
        f'No {kind} file {rel!r} in {base}; available: '
        f'{", ".join(_listing(base)) or "none"}.'
    )


def _listing(base: Path) -> List[str]:
    """``*.py`` files below ``base``, relative and sorted."""
    return sorted(
        str(p.relative_to(base))
        for p in base.rglob('*.py')
        if '__pycache__' not in p.parts
    )


def config_path(rel: str) -> str:
    """Absolute path of one of the plugin's configs.

    Args:
        rel (str): Path below ``configs/``, e.g.
            ``'demo/efficientnet_lite0_timm_in1k.py'``.

    Returns:
        str: The file's absolute path.

    Raises:
        ConfigError: When the file does not exist, listing those that do.
    """
    return str(_find('configs', rel))


def list_configs() -> List[str]:
    """Paths of the plugin's configs, relative to ``configs/``.

    Returns:
        list[str]: E.g. ``['demo/efficientnet_lite0_timm_in1k.py', ...]``.
    """
    base = mim_root() / 'configs'
    return _listing(base) if base.is_dir() else []


def tool_path(name: str) -> str:
    """Absolute path of one of the plugin's tools (``'vis_cam'``).

    Args:
        name (str): Tool name without ``.py``.

    Returns:
        str: The script's absolute path.

    Raises:
        ConfigError: When the tool does not exist, listing those that do.
    """
    return str(_find('tools', f'{name}.py'))
