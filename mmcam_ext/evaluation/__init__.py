"""Scores for CAMs: localisation against known boxes, faithfulness."""

from .faithfulness import blur, deletion_insertion_auc, saliency_order
from .localization import (
    box_area_fraction,
    box_mask,
    energy_in_box,
    pointing_game,
)

__all__ = [
    'box_area_fraction',
    'box_mask',
    'energy_in_box',
    'pointing_game',
    'blur',
    'deletion_insertion_auc',
    'saliency_order',
]
