"""Generated images with a known object box, for localisation checks.

No data set can be downloaded here, so tests and benchmarks draw their own:
one class-defining shape (circle, square, triangle) at a random position and
scale on a cluttered background, plus distractor strokes that carry no class
information. Because the box of the class-defining object is known, a CAM
can be scored (pointing game, energy in box) without human labels.

The files form an MMPretrain ``CustomDataset`` tree
(``<root>/<split>/<class>/<i>.png``) with the boxes in
``<root>/<split>_boxes.json`` keyed by the path relative to ``<root>/<split>``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'SHAPE_CLASSES',
    'ShapesConfig',
    'draw_sample',
    'draw_pair',
    'make_shapes_split',
    'load_boxes',
    'Box',
]

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels
SHAPE_CLASSES = ('circle', 'square', 'triangle')


@dataclass(frozen=True)
class ShapesConfig:
    """How a split is drawn.

    Args:
        size: ``(height, width)`` of each image (non-square allowed).
        per_class: Images per class.
        scale: Range of the object's side as a fraction of ``min(h, w)``.
        distractors: Random strokes drawn on the background.
        seed: RNG seed; same seed, same images.
    """

    size: Tuple[int, int] = (64, 64)
    per_class: int = 40
    scale: Tuple[float, float] = (0.3, 0.5)
    distractors: int = 3
    seed: int = 0
    classes: Sequence[str] = SHAPE_CLASSES


def _background(
    rng: np.random.Generator, size: Tuple[int, int], distractors: int
) -> np.ndarray:
    """Low-contrast noise plus random line strokes (clutter)."""
    h, w = size
    img = rng.integers(60, 110, size=(h, w, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    for _ in range(distractors):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        color = tuple(int(c) for c in rng.integers(120, 255, size=3))
        cv2.line(img, p0, p1, color, 1)
    return img


def _draw_shape(
    img: np.ndarray, rng: np.random.Generator, cls: str, box: Box
) -> None:
    """Draw the filled shape of class ``cls`` into ``box`` of ``img``."""
    x0, y0, x1, _ = box
    side = x1 - x0
    color = tuple(int(c) for c in rng.integers(170, 256, size=3))
    if cls == 'circle':
        r = side // 2
        cv2.circle(img, (x0 + r, y0 + r), r, color, -1)
    elif cls == 'square':
        cv2.rectangle(img, (x0, y0), (x0 + side - 1, y0 + side - 1), color, -1)
    elif cls == 'triangle':
        pts = np.array(
            [
                [x0 + side // 2, y0],
                [x0, y0 + side - 1],
                [x0 + side - 1, y0 + side - 1],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [pts], color)
    else:
        raise ValueError(
            f'Unknown shape class {cls!r}; choose from {SHAPE_CLASSES}.'
        )


def _random_box(
    rng: np.random.Generator, cfg: ShapesConfig, scale: float = 1.0
) -> Box:
    h, w = cfg.size
    side = max(int(min(h, w) * rng.uniform(*cfg.scale) * scale), 6)
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    return x0, y0, x0 + side, y0 + side


def draw_sample(
    rng: np.random.Generator, cls: str, cfg: ShapesConfig
) -> Tuple[np.ndarray, Box]:
    """One RGB image of class ``cls`` and the box of its object."""
    img = _background(rng, cfg.size, cfg.distractors)
    box = _random_box(rng, cfg)
    _draw_shape(img, rng, cls, box)
    return img, box


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_pair(
    rng: np.random.Generator,
    classes: Tuple[str, str],
    cfg: ShapesConfig,
    scale: float = 1.0,
) -> Tuple[np.ndarray, Tuple[Box, Box]]:
    """One RGB image holding two objects of different classes.

    Both objects are drawn like :func:`draw_sample`'s (times ``scale``);
    the second box is re-drawn until it is disjoint from the first.

    Args:
        rng: The random generator.
        classes: The two classes, e.g. ``('circle', 'square')``.
        cfg: Size, scale range and distractors.
        scale: Size factor of both objects. Defaults to 1.

    Returns:
        The image and the two boxes, in the order of ``classes``.
    """
    img = _background(rng, cfg.size, cfg.distractors)
    first = _random_box(rng, cfg, scale)
    for _ in range(1000):
        second = _random_box(rng, cfg, scale)
        if not _overlap(first, second):
            break
    else:
        raise ValueError(
            f'Cannot place two disjoint objects in a {cfg.size} image.'
        )
    _draw_shape(img, rng, classes[0], first)
    _draw_shape(img, rng, classes[1], second)
    return img, (first, second)


def make_shapes_split(root: str, split: str, cfg: ShapesConfig) -> Path:
    """Write one split; returns ``<root>/<split>``. Existing files are kept.

    Args:
        root: Output folder.
        split: Sub-folder name, e.g. ``'train'`` or ``'val'``.
        cfg: Drawing parameters; use a different seed per split.
    """
    out = Path(root) / split
    boxes_file = Path(root) / f'{split}_boxes.json'
    if boxes_file.exists():
        return out
    rng = np.random.default_rng(cfg.seed)
    boxes: Dict[str, List[int]] = {}
    for cls in cfg.classes:
        (out / cls).mkdir(parents=True, exist_ok=True)
    for i in range(cfg.per_class):
        for cls in cfg.classes:
            img, box = draw_sample(rng, cls, cfg)
            rel = f'{cls}/{i:04d}.png'
            cv2.imwrite(str(out / rel), img[..., ::-1])
            boxes[rel] = list(box)
    boxes_file.write_text(json.dumps(boxes, indent=0))
    return out


def load_boxes(root: str, split: str) -> Dict[str, Box]:
    """Boxes of a split written by :func:`make_shapes_split`."""
    data = json.loads((Path(root) / f'{split}_boxes.json').read_text())
    return {k: tuple(v) for k, v in data.items()}
