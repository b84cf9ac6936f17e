"""mmcam_ext: class-activation maps for MMPretrain.

Importing the package registers its resolvers, methods, visualizer and hook
(``custom_imports = dict(imports=['mmcam_ext'])`` in a config).
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
from .version import __version__

__all__ = [
    'CAMEngine',
    'MMCamError',
    'CAMResult',
    'TargetSpec',
    'TokenLayout',
    'CAM_METHODS',
    'TARGET_RESOLVERS',
    '__version__',
]
