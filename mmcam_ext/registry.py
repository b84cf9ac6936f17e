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

from importlib import import_module
from typing import Any, Mapping, Optional

from mmengine.registry import Registry
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import VISUALIZERS as MMPRETRAIN_VISUALIZERS

__all__ = [
    'TARGET_RESOLVERS',
    'CAM_METHODS',
    'OUTPUT_WRITERS',
    'HOOKS',
    'VISUALIZERS',
]

# Target-layer resolvers: which layer(s) and which token layout per backbone.
TARGET_RESOLVERS = Registry(
    'cam target resolver',
    scope='mmcam_ext',
    locations=['mmcam_ext.resolvers'],
)


def _build_cam_method(
    cfg: Mapping[str, Any],
    registry: Any = None,
    default_args: Optional[Mapping[str, Any]] = None,
) -> Any:
    """``CAM_METHODS``' build function: case-insensitive names and aliases,
    options checked against the constructor. The rules live with the
    methods (:mod:`mmcam_ext.methods.builder`), imported by name on the
    first build, as ``locations`` imports the methods themselves."""
    builder = import_module('mmcam_ext.methods.builder')
    return builder.build_cam_method(cfg, registry, default_args)


# CAM methods (GradCAM, ScoreCAM, attention rollout, ...), built from config
# dicts by ``mmcam_ext.methods.builder.build_cam_method``.
CAM_METHODS = Registry(
    'cam method',
    scope='mmcam_ext',
    locations=['mmcam_ext.methods'],
    build_func=_build_cam_method,
)
# Output writers of a CAM dump (map store, descriptors, thumbnails,
# per-sample PNGs, the index), built from dicts by ``CAMWriter``.
OUTPUT_WRITERS = Registry(
    'cam output writer',
    scope='mmcam_ext',
    locations=['mmcam_ext.fileio.outputs'],
)
# Hooks live in MMPretrain's registry so the default scope finds them.
HOOKS = MMPRETRAIN_HOOKS
# Visualizers too: ``visualizer=dict(type='CAMVisualizer')`` in a config.
VISUALIZERS = MMPRETRAIN_VISUALIZERS
