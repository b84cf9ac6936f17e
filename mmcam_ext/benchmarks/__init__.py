"""Speed, memory, localisation and faithfulness benchmarks (issue 5).

``tools/benchmark.py`` is the thin command line; the logic lives here so it
can be tested: :func:`run_benchmark` with :func:`quick_settings` or
:func:`full_settings` returns a :class:`Report` (Markdown table + plot).
"""
from .faithfulness import blur, deletion_insertion_auc, saliency_order
from .quality import QualityCase, QualityRow, score_maps
from .report import Report, Row
from .speed import SPEED_MODELS, ModelCase, SpeedBench, floor_pass
from .suite import (SECTIONS, Settings, full_settings, quick_settings,
                    run_benchmark)
from .timing import interleaved_medians

__all__ = [
    'blur', 'deletion_insertion_auc', 'saliency_order', 'QualityCase',
    'QualityRow', 'score_maps', 'Report', 'Row', 'SPEED_MODELS', 'ModelCase',
    'SpeedBench', 'floor_pass', 'SECTIONS', 'Settings', 'full_settings',
    'quick_settings', 'run_benchmark', 'interleaved_medians'
]
