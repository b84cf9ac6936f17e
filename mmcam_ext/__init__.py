"""mmcam_ext: class-activation maps for MMPretrain.

Importing the package registers its resolvers, methods, visualizer and hook
(``custom_imports = dict(imports=['mmcam_ext'])`` in a config), and
allow-lists the types of MMEngine Runner checkpoints for every
``torch.load(weights_only=True)`` of the process (:mod:`mmcam_ext.checkpoint`).
:func:`config_path` gives the absolute path of one of the plugin's configs.
"""

from . import (  # noqa: F401  (registration)  # noqa: F401  (hook, visualizer)
    checkpoint,
    engine,
    methods,
    resolvers,
    visualization,
)
from .apis import CAMEngine
from .errors import MMCamError
from .registry import CAM_METHODS, TARGET_RESOLVERS
from .structures import CAMResult, TargetSpec, TokenLayout
from .utils.config import config_path
from .version import __version__

__all__ = [
    'CAMEngine',
    'MMCamError',
    'CAMResult',
    'TargetSpec',
    'TokenLayout',
    'CAM_METHODS',
    'TARGET_RESOLVERS',
    'config_path',
    '__version__',
]
