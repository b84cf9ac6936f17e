"""Localisation scores of a CAM against a known object box."""

from typing import Sequence, Tuple

import numpy as np

__all__ = ['pointing_game', 'energy_in_box', 'box_mask', 'box_area_fraction']

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def box_mask(shape: Tuple[int, int], box: Box) -> np.ndarray:
    """Boolean ``(H, W)`` mask of ``box``."""
    mask = np.zeros(shape, bool)
    x0, y0, x1, y1 = box
    mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
    return mask


def pointing_game(cam: np.ndarray, box: Box, tolerance: int = 0) -> bool:
    """Whether the CAM's maximum lies in the box (grown by ``tolerance`` px).

    Ties (a flat map) count as a miss: a blank map must not score.
    """
    if np.ptp(cam) <= 0:
        return False
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    x0, y0, x1, y1 = box
    return bool(
        x0 - tolerance <= x < x1 + tolerance
        and y0 - tolerance <= y < y1 + tolerance
    )


def energy_in_box(cam: np.ndarray, box: Box) -> float:
    """Share of the (non-negative) CAM mass inside the box, in ``[0, 1]``."""
    cam = np.clip(cam, 0, None)
    total = float(cam.sum())
    if total <= 0:
        return 0.0
    height, width = cam.shape
    return float(cam[box_mask((height, width), box)].sum()) / total


def box_area_fraction(shape: Sequence[int], box: Box) -> float:
    """Area of the box as a fraction of the image: the chance level of
    :func:`energy_in_box` for a uniform map."""
    height, width = shape
    return float(box_mask((int(height), int(width)), box).mean())
