"""Where the plugin's own configs and tools are, in a wheel or a clone.

MMPretrain ships its ``configs/`` and ``tools/`` inside the package, under
``mmpretrain/.mim/``; ``mim run`` and MMPretrain's own helpers look there.
mmcam_ext does the same: ``setup.py`` copies the top-level ``configs/`` and
``tools/`` into ``mmcam_ext/.mim/`` when a wheel is built, and links them
there for an editable install. Code in the package finds them only through
this module, never by a path relative to the repository.
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
    base = mim_root() / kind
    path = base / rel
    if path.is_file():
        return path
    if not base.is_dir():
        raise ConfigError(
            f'mmcam_ext has no {kind}/ folder at {base}: the package was '
            'neither installed from a wheel nor with pip install -e (which '
            f'put {kind}/ there). Reinstall mmcam_ext.'
        )
    raise ConfigError(
        f'No {kind} file {rel!r} in {base}; available: '
        f'{", ".join(_listing(base)) or "none"}.'
    )


def _listing(base: Path) -> List[str]:
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
    """
    return str(_find('tools', f'{name}.py'))
