"""Grad-CAM of the real demo model falls on the object it explains.

Boxes are ``(x0, y0, x1, y1)`` in the preprocessed 224x224 frame (shorter
side resized to 256, centre crop 224), drawn by looking at the crops.
"""

from typing import Tuple

import numpy as np
import pytest
import torch

from mmcam_ext import CAMEngine
from mmcam_ext.demo import load_images

# Real 224x224 EfficientNet passes with gradients: over 20 s on a busy CPU.
pytestmark = pytest.mark.slow

Box = Tuple[int, int, int, int]
# Chelsea fills the crop; this box holds both eyes, nose and mouth only.
CHELSEA_FACE: Box = (30, 50, 200, 215)
# Coffee: cup rim and body; no saucer, spoon or table.
COFFEE_CUP: Box = (30, 0, 182, 170)
CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


def _energy_in(cam: np.ndarray, box: Box) -> float:
    x0, y0, x1, y1 = box
    return float(cam[y0:y1, x0:x1].sum() / cam.sum())


def _area(box: Box, shape: Tuple[int, int]) -> float:
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) / float(shape[0] * shape[1])


def _peak_in(cam: np.ndarray, box: Box) -> bool:
    y, x = np.unravel_index(cam.argmax(), cam.shape)
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def _only_map(result) -> np.ndarray:
    (maps,) = result.maps.values()
    return maps


@pytest.fixture(scope='module')
def crops(demo_model, demo_assets, demo_image) -> torch.Tensor:
    return load_images(
        demo_model,
        demo_assets.config,
        [demo_image('chelsea'), demo_image('coffee')],
    )


@pytest.fixture(scope='module')
def crop_result(demo_model, crops):
    return CAMEngine(demo_model).explain(crops, methods=('gradcam',))


def test_predicted_classes(crop_result):
    assert crop_result.pred_labels[0] in CAT_CLASSES
    assert crop_result.pred_labels[1] == ESPRESSO
    np.testing.assert_array_equal(
        crop_result.targets[:, 0], crop_result.pred_labels
    )


@pytest.mark.parametrize(
    'index,box,min_ratio',
    [
        (0, CHELSEA_FACE, 1.1),  # box covers 56% of a frame full of cat
        (1, COFFEE_CUP, 1.3),  # box covers 52%
    ],
)
def test_gradcam_falls_on_object(crop_result, index, box, min_ratio):
    cam = _only_map(crop_result)[index, 0]
    assert cam.shape == (224, 224) and cam.max() > 0.99
    assert _peak_in(cam, box)
    ratio = _energy_in(cam, box) / _area(box, cam.shape)
    assert ratio >= min_ratio, f'energy/area = {ratio:.2f}'


def test_gradcam_is_class_discriminative(demo_model, crops, crop_result):
    """Cat and cup side by side (both orders): each class's map lies on its
    own half, and the cat's peak on the cat's face."""
    cat = int(crop_result.pred_labels[0])
    pairs = torch.stack(
        [
            torch.cat([crops[0], crops[1]], -1),
            torch.cat([crops[1], crops[0]], -1),
        ]
    )
    result = CAMEngine(demo_model).explain(
        pairs, targets=[[cat, ESPRESSO]] * 2
    )
    maps = _only_map(result)
    assert maps.shape == (2, 2, 224, 448)
    for sample, cat_left in ((0, True), (1, False)):
        cat_half = (0, 0, 224, 224) if cat_left else (224, 0, 448, 224)
        cup_half = (224, 0, 448, 224) if cat_left else (0, 0, 224, 224)
        shift = 0 if cat_left else 224
        face = (
            CHELSEA_FACE[0] + shift,
            CHELSEA_FACE[1],
            CHELSEA_FACE[2] + shift,
            CHELSEA_FACE[3],
        )
        cat_map, cup_map = maps[sample, 0], maps[sample, 1]
        assert _energy_in(cat_map, cat_half) >= 0.75
        assert _energy_in(cup_map, cup_half) >= 0.75
        assert _peak_in(cat_map, face)
        assert _peak_in(cup_map, cup_half)
