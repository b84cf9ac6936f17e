"""Runner hooks of mmcam_ext (registered in MMPretrain's HOOKS)."""

from .cam_options import DumpOptions, ExplainOptions, SampleSelection
from .cam_visualization_hook import CAMVisualizationHook

__all__ = [
    'CAMVisualizationHook',
    'SampleSelection',
    'DumpOptions',
    'ExplainOptions',
]
