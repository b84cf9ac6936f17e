"""Error analysis over CAM dumps: mistakes grouped into patterns by their
evidence descriptors, and pool images mined for each pattern."""

from .clustering import cluster_patterns, pattern_features, require_sklearn
from .crops import evidence_box, evidence_crop, read_rgb, typical_map
from .dump_descriptors import dump_meta, dump_signature, load_descriptors
from .mining import (
    MineOptions,
    annotation_lines,
    check_compatible,
    mine_negatives,
)
from .patterns import ERROR_KINDS, PatternOptions, discover_patterns

__all__ = [
    'ERROR_KINDS',
    'MineOptions',
    'PatternOptions',
    'annotation_lines',
    'check_compatible',
    'cluster_patterns',
    'discover_patterns',
    'dump_meta',
    'dump_signature',
    'evidence_box',
    'evidence_crop',
    'load_descriptors',
    'mine_negatives',
    'pattern_features',
    'read_rgb',
    'require_sklearn',
    'typical_map',
]
