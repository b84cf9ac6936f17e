"""MMEngine integration: the CAM hook and the on-disk format of its dumps."""
from .cam_dump import INDEX_FIELDS, read_index
from .hooks import (CAMVisualizationHook, DumpOptions, ExplainOptions,
                    SampleSelection)

__all__ = ['CAMVisualizationHook', 'SampleSelection', 'DumpOptions',
           'ExplainOptions', 'INDEX_FIELDS', 'read_index']
