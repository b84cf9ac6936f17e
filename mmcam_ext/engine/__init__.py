"""MMEngine integration: the CAM hook (registered in MMPretrain's HOOKS)."""

from .hooks import (
    CAMVisualizationHook,
    DumpOptions,
    ExplainOptions,
    SampleSelection,
)

__all__ = [
    'CAMVisualizationHook',
    'SampleSelection',
    'DumpOptions',
    'ExplainOptions',
]
