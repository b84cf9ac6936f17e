"""Evidence crops and typical maps: what a pattern looks like.

A map's high region (values at least ``frac`` of its maximum) gives a box;
the box is scaled from the map's grid to the original image (the map
covers the whole model input, so this is exact for a plain resize and
approximate after a centre crop) and cut out, so a person sees *what* the
model looked at.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..fileio import CAMDump

__all__ = ['evidence_box', 'evidence_crop', 'typical_map', 'read_rgb']

Box = Tuple[int, int, int, int]


def evidence_box(
    cam: np.ndarray, image_hw: Tuple[int, int], frac: float = 0.5
) -> Optional[Box]:
    """Bounding box ``(x0, y0, x1, y1)`` of ``cam >= frac * max`` in image
    pixels (``x1``/``y1`` exclusive), or None for a map without evidence.

    Args:
        cam (np.ndarray): ``(h, w)`` map.
        image_hw (tuple[int, int]): Height and width of the image.
        frac (float): Share of the maximum that counts as high.
            Defaults to 0.5.

    Returns:
        tuple | None: The box.
    """
    cam = np.asarray(cam, np.float32)
    peak = float(cam.max()) if cam.size else 0.0
    if not peak > 0:
        return None
    ys, xs = np.nonzero(cam >= frac * peak)
    h, w = cam.shape
    sy, sx = image_hw[0] / h, image_hw[1] / w
    return (
        int(np.floor(xs.min() * sx)),
        int(np.floor(ys.min() * sy)),
        int(min(image_hw[1], np.ceil((xs.max() + 1) * sx))),
        int(min(image_hw[0], np.ceil((ys.max() + 1) * sy))),
    )


def read_rgb(path: str) -> Optional[np.ndarray]:
    """An image file as RGB uint8, or None when it cannot be read."""
    if not path or not os.path.isfile(path):
        return None
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if img is None else img[..., ::-1]


def evidence_crop(
    image: np.ndarray, cam: np.ndarray, frac: float = 0.5
) -> Optional[np.ndarray]:
    """The part of ``image`` under the map's high region.

    Args:
        image (np.ndarray): ``(H, W, 3)`` image.
        cam (np.ndarray): Its ``(h, w)`` map.
        frac (float): See :func:`evidence_box`. Defaults to 0.5.

    Returns:
        np.ndarray | None: The crop, None for a map without evidence.
    """
    box = evidence_box(cam, image.shape[:2], frac)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def typical_map(
    dump: CAMDump, rows: Sequence[Dict], size: int = 64
) -> np.ndarray:
    """Mean of the rows' maps, each resized to ``size x size`` and scaled
    to a maximum of 1 first (so every member counts the same).

    Args:
        dump (CAMDump): The dump the rows belong to.
        rows (Sequence[dict]): Rows with raw maps.
        size (int): Side of the result. Defaults to 64.

    Returns:
        np.ndarray: float32 ``(size, size)`` map.
    """
    acc = np.zeros((size, size), np.float32)
    used: List[int] = []
    for row in rows:
        if not row.get('raw_file'):
            continue
        cam = np.clip(dump.load(row), 0, None)
        cam = cv2.resize(cam, (size, size), interpolation=cv2.INTER_AREA)
        acc += cam / max(float(cam.max()), 1e-12)
        used.append(1)
    return acc / max(len(used), 1)
