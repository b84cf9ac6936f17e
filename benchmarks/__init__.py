"""Speed, memory, localisation and faithfulness benchmarks of mmcam_ext.

Not part of the installed package: this folder lives next to ``tools/`` in
the repository and imports ``mmcam_ext`` like any user code.

``tools/benchmark.py`` is the thin command line; the logic lives here so it
can be tested: :func:`run_benchmark` with :func:`quick_settings` or
:func:`full_settings` returns a :class:`Report` (Markdown table + plot).
"""

from .quality import QualityCase, QualityRow, score_maps
from .report import Report, Row
from .speed import SPEED_MODELS, ModelCase, SpeedBench, floor_pass
from .suite import (
    SECTIONS,
    Settings,
    full_settings,
    quick_settings,
    run_benchmark,
)
from .testset import EVERY_SAMPLE_MODELS, EverySampleCase, every_sample_rows
from .timing import interleaved_medians

__all__ = [
    'QualityCase',
    'QualityRow',
    'score_maps',
    'Report',
    'Row',
    'SPEED_MODELS',
    'ModelCase',
    'SpeedBench',
    'floor_pass',
    'SECTIONS',
    'Settings',
    'full_settings',
    'quick_settings',
    'run_benchmark',
    'interleaved_medians',
    'EVERY_SAMPLE_MODELS',
    'EverySampleCase',
    'every_sample_rows',
]
