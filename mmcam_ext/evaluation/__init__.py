"""Scores for CAMs: localisation against known boxes."""
from .localization import (box_area_fraction, box_mask, energy_in_box,
                           pointing_game)

__all__ = ['box_area_fraction', 'box_mask', 'energy_in_box', 'pointing_game']
