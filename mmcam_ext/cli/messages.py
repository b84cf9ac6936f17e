"""How the command lines report errors and warnings: one line, their flags.

The library raises typed errors that name its arguments as the API spells
them (``target_layers``, ``strict=False``); a command-line user knows
flags. :func:`cli_message` translates one into the other, with a table per
tool, so the library never has to know about flags.
"""

import re
import sys
from typing import Dict, Mapping, Optional

__all__ = ['VIS_CAM_FLAGS', 'VIS_CAM_OPTION_FLAGS', 'cli_message', 'report']

#: API names that are not plain words: translated wherever they appear.
VIS_CAM_FLAGS: Dict[str, str] = {
    'target_layers': '--target-layers',
    'num_extra_tokens': '--num-extra-tokens',
    'model.named_modules()': '--preview-model',
    'strict=False': '--allow-partial-checkpoint',
    'max_image_pixels': '--max-image-pixels',
    'max_input_pixels': '--max-input-pixels',
    'batch_size': '--batch-size',
    'num_workers': '--num-workers',
    'cfg_options': '--cfg-options',
    'topk': '--topk',
    'aug_smooth': '--aug-smooth',
    'eigen_smooth': '--eigen-smooth',
    'whole_image': '--whole-image',
    'input_size': '--input-size',
    'scale_fusion': '--scale-fusion',
    'draw_on': '--draw-on',
    'tile_size': '--tile-size',
    'tile_overlap': '--tile-overlap',
}
#: API names that are also plain words: translated only in an error whose
#: ``option`` is that argument.
VIS_CAM_OPTION_FLAGS: Dict[str, str] = {
    'methods': '--method',
    'targets': '--target-category',
    'device': '--device',
    'scales': '--scales',
}


def cli_message(
    err: BaseException,
    flags: Mapping[str, str] = VIS_CAM_FLAGS,
    option_flags: Mapping[str, str] = VIS_CAM_OPTION_FLAGS,
) -> str:
    """An error's message on one line, with API names as flags.

    Args:
        err (BaseException): The error (its ``option`` attribute, if any,
            names the argument it is about).
        flags (Mapping): API name -> flag, always translated.
            Defaults to ``VIS_CAM_FLAGS``.
        option_flags (Mapping): API name -> flag, translated when it is the
            error's ``option``. Defaults to ``VIS_CAM_OPTION_FLAGS``.

    Returns:
        str: The message.
    """
    text = str(err) if str(err) else type(err).__name__
    names = dict(flags)
    option: Optional[str] = getattr(err, 'option', None)
    if option is not None and option in option_flags:
        names[option] = option_flags[option]
    for name in sorted(names, key=len, reverse=True):
        pattern = rf'(?<![\w.\-]){re.escape(name)}(?![\w(])'
        text = re.sub(pattern, names[name].replace('\\', r'\\'), text)
    return ' '.join(text.split())


def report(prog: str, kind: str, message: str) -> None:
    """Print ``prog: kind: message`` on stderr.

    Args:
        prog (str): The tool's name, e.g. ``'vis_cam.py'``.
        kind (str): ``'error'`` or ``'warning'``.
        message (str): One line.
    """
    print(f'{prog}: {kind}: {message}', file=sys.stderr, flush=True)


#: The one known warning of mmcv-lite that has nothing to do with CAMs
#: (its CUDA ops are absent; classification never uses them).
MMCV_LITE_WARNING = 'Fail to import ``MultiScaleDeformableAttention``'


def quiet_known_warnings() -> None:
    """Hide mmcv-lite's *MultiScaleDeformableAttention* warning (only
    that one) in our entry points; every other warning still shows."""
    import warnings

    warnings.filterwarnings(
        'ignore', message=MMCV_LITE_WARNING, category=UserWarning
    )
