"""Registries of mmcam_ext, placed in MMPretrain's registry tree.

MMEngine's registry lookup only walks *up* to parents, never down into
children. A hook or visualizer registered only in a child registry with scope
``mmcam_ext`` would therefore not be found by ``type='CAMVisualizationHook'``
in a config whose ``default_scope`` is ``mmpretrain``. So the parts a user
names in an MMPretrain config (hooks, visualizers) are registered straight into
MMPretrain's own registries, and the two kinds MMPretrain has no registry for
(target-layer resolvers and CAM methods) get registries of their own, with
``locations`` so that building by name imports the defining modules lazily.
"""

from mmengine.registry import Registry
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import VISUALIZERS as MMPRETRAIN_VISUALIZERS

__all__ = ['TARGET_RESOLVERS', 'CAM_METHODS', 'HOOKS', 'VISUALIZERS']

# Target-layer resolvers: which layer(s) and which token layout per backbone.
TARGET_RESOLVERS = Registry(
    'cam target resolver',
    scope='mmcam_ext',
    locations=['mmcam_ext.resolvers'],
)
# CAM methods (GradCAM, ScoreCAM, attention rollout, ...), built from config
# dicts; ``mmcam_ext.methods.base`` sets its build function (case-insensitive
# names and aliases, options checked against the constructor).
CAM_METHODS = Registry(
    'cam method',
    scope='mmcam_ext',
    locations=['mmcam_ext.methods'],
)
# Hooks live in MMPretrain's registry so the default scope finds them.
HOOKS = MMPRETRAIN_HOOKS
# Visualizers too: ``visualizer=dict(type='CAMVisualizer')`` in a config.
VISUALIZERS = MMPRETRAIN_VISUALIZERS
