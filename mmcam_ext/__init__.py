"""mmcam_ext: class-activation maps for MMPretrain.

Importing the package registers its resolvers, methods, visualizer and hook
(``custom_imports = dict(imports=['mmcam_ext'])`` in a config).
"""
from . import methods, resolvers  # noqa: F401  (registration)
from . import checkpoint  # noqa: F401  (allow-list Runner ckpt types)
from . import engine, visualization  # noqa: F401  (hook, visualizer)
from .apis import CAMEngine
from .registry import CAM_METHODS, TARGET_RESOLVERS
from .structures import CAMResult, TargetSpec, TokenLayout
from .version import __version__

__all__ = [
    'CAMEngine', 'CAMResult', 'TargetSpec', 'TokenLayout', 'CAM_METHODS',
    'TARGET_RESOLVERS', '__version__'
]
