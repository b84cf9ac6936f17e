"""Generated data and a tiny classifier for the error-patterns benchmark.

A binary task: is the *object* (a yellow plus) in the image? In training,
positives carry one of three planted *decoys* (a red ring, a blue
checkerboard, green and white bars) and a fifth of them show only the
decoy (the object hidden), so the model learns the decoys as evidence of
the class.
Images of the later splits are negatives that carry one cause each: a
decoy, or a *look-alike* of the object (an amber plus, never seen in
training), or nothing. Every image has random clutter (coloured
rectangles), which dominates plain pooled features but not the features
under the CAM.
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import nn

__all__ = [
    'CAUSES',
    'SIDE',
    'draw_split',
    'build_model',
    'train_model',
    'to_tensor',
    'TARGET_LAYER',
    'ITEMS',
    'pretrain_split',
    'pretrain_backbone',
    'fit_head',
]

SIDE = 32
CELL = 8
#: Planted causes of false positives, in report order.
CAUSES = ('ring', 'checker', 'stripes', 'lookalike')
OBJECT = 'object'
TARGET_LAYER = 'backbone.conv3'
_YELLOW, _AMBER = (240, 220, 40), (245, 150, 30)
_CLUTTER = ((150, 60, 200), (40, 200, 210), (140, 90, 50), (200, 200, 200))


def _plus(colour) -> np.ndarray:
    patch = np.zeros((7, 7, 4), np.uint8)
    patch[2:5, :, :3] = colour
    patch[:, 2:5, :3] = colour
    patch[2:5, :, 3] = patch[:, 2:5, 3] = 1
    return patch


def _ring() -> np.ndarray:
    patch = np.zeros((7, 7, 4), np.uint8)
    patch[..., :3], patch[..., 3] = (220, 40, 40), 1
    patch[2:5, 2:5, 3] = 0
    return patch


def _checker() -> np.ndarray:
    yy, xx = np.mgrid[:7, :7]
    patch = np.zeros((7, 7, 4), np.uint8)
    on = (yy // 2 + xx // 2) % 2 == 0
    patch[on, :3], patch[..., 3] = (40, 80, 235), 1
    patch[~on, :3] = (10, 10, 30)
    return patch


def _stripes() -> np.ndarray:
    xx = np.mgrid[:7, :7][1]
    patch = np.zeros((7, 7, 4), np.uint8)
    on = xx % 2 == 0
    patch[on, :3], patch[..., 3] = (40, 210, 80), 1
    patch[~on, :3] = (235, 235, 235)
    return patch


PATCHES = {
    OBJECT: _plus(_YELLOW),
    'lookalike': _plus(_AMBER),
    'ring': _ring(),
    'checker': _checker(),
    'stripes': _stripes(),
}
#: What the backbone is pretrained to recognise (multi-label): the patches
#: and the clutter colours.
ITEMS = tuple(PATCHES) + tuple(f'clutter{k}' for k in range(len(_CLUTTER)))


def _paste(img: np.ndarray, patch: np.ndarray, cell: int, rng) -> None:
    """Put a 7x7 RGBA patch into grid cell ``cell`` with a 0-1 px jitter."""
    per_row = SIDE // CELL
    y = (cell // per_row) * CELL + int(rng.integers(0, 2))
    x = (cell % per_row) * CELL + int(rng.integers(0, 2))
    mask = patch[..., 3:].astype(bool)
    img[y : y + 7, x : x + 7] = np.where(
        mask, patch[..., :3], img[y : y + 7, x : x + 7]
    )


def draw(
    items: Sequence[str], rng, clutter: int = 3
) -> Tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 image with the named patches and random clutter, and
    its multi-hot vector over :data:`ITEMS` (clutter colours last)."""
    base = rng.integers(20, 70, 3)
    img = np.clip(base + rng.normal(0, 8, (SIDE, SIDE, 3)), 0, 255)
    img = img.astype(np.uint8)
    cells = rng.permutation((SIDE // CELL) ** 2)
    hot = np.zeros(len(ITEMS), np.float32)
    for k in range(clutter):
        patch = np.zeros((7, 7, 4), np.uint8)
        h, w = rng.integers(3, 8, 2)
        colour = int(rng.integers(len(_CLUTTER)))
        patch[:h, :w, :3] = _CLUTTER[colour]
        patch[:h, :w, 3] = 1
        _paste(img, patch, int(cells[k]), rng)
        hot[len(PATCHES) + colour] = 1
    for k, name in enumerate(items):
        _paste(img, PATCHES[name], int(cells[clutter + k]), rng)
        hot[ITEMS.index(name)] = 1
    return img, hot


def _positive_items(rng) -> Tuple[str, ...]:
    """Training positives: the object (80 %) and a decoy (90 %; always
    when the object is hidden)."""
    has_object = rng.random() < 0.8
    decoy = CAUSES[int(rng.integers(3))]
    items = (OBJECT,) if has_object else ()
    if not has_object or rng.random() < 0.9:
        items += (decoy,)
    return items


def draw_split(
    num_pos: int,
    num_neg: int,
    cause_rate: float,
    seed: int,
    training: bool = False,
) -> Dict[str, np.ndarray]:
    """Images, labels (1 = object) and planted cause per image.

    Args:
        num_pos (int): Positives.
        num_neg (int): Negatives.
        cause_rate (float): Share of negatives carrying each cause
            (training: decoys only, at a hundredth of the rate).
        seed (int): Seed.
        training (bool): Training positives (decoys, hidden objects).
            Defaults to False (test positives: object always, decoys as in
            training).

    Returns:
        dict: ``images`` (N, SIDE, SIDE, 3) uint8, ``labels`` (N,),
        ``causes`` (N,) index into :data:`CAUSES` or -1.
    """
    rng = np.random.default_rng(seed)
    images, labels, causes = [], [], []
    for _ in range(num_pos):
        items = _positive_items(rng)
        if not training and OBJECT not in items:
            items = (OBJECT,) + items
        images.append(draw(items, rng)[0])
        labels.append(1)
        causes.append(-1)
    usable = CAUSES[:3] if training else CAUSES
    for _ in range(num_neg):
        u, cause = rng.random(), -1
        for k in range(len(usable)):
            if k * cause_rate <= u < (k + 1) * cause_rate:
                cause = k
        images.append(draw((CAUSES[cause],) if cause >= 0 else (), rng)[0])
        labels.append(0)
        causes.append(cause)
    order = rng.permutation(len(images))
    return dict(
        images=np.stack(images)[order],
        labels=np.array(labels)[order],
        causes=np.array(causes)[order],
    )


def pretrain_split(num: int, seed: int) -> Dict[str, np.ndarray]:
    """Unbiased images for pretraining: each patch present with
    probability 0.3 (the look-alike too), with multi-hot ``items``.

    Args:
        num (int): Images.
        seed (int): Seed.

    Returns:
        dict: ``images`` and ``items`` ``(num, len(ITEMS))``.
    """
    rng = np.random.default_rng(seed)
    out = [
        draw([n for n in PATCHES if rng.random() < 0.3], rng)
        for _ in range(num)
    ]
    return dict(
        images=np.stack([o[0] for o in out]),
        items=np.stack([o[1] for o in out]),
    )


@MODELS.register_module(force=True)
class PatternsBenchCNN(BaseBackbone):
    """Three conv layers, 8x8 output map on 32 px (benchmark only).

    Args:
        width (int): Channels of the first layer (doubled per layer).
            Defaults to 16.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.conv3(self.conv2(self.conv1(x))),)


def build_model(width: int = 16, seed: int = 0) -> nn.Module:
    """The MMPretrain ``ImageClassifier`` of the benchmark, seeded."""
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='PatternsBenchCNN', width=width),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=2,
                in_channels=4 * width,
                loss=dict(type='CrossEntropyLoss'),
            ),
        )
    )


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> normalised float ``(N, 3, H, W)``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return (x - 80.0) / 60.0


def train_model(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    seed: int = 0,
    lr: float = 3e-3,
    batch: Optional[int] = 128,
) -> nn.Module:
    """Plain cross-entropy training with Adam (seeded order)."""
    gen = torch.Generator().manual_seed(seed)
    x, y = to_tensor(images), torch.from_numpy(labels).long()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch or 128):
            loss = nn.functional.cross_entropy(
                model(x[idx], mode='tensor'), y[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def pretrain_backbone(
    model: nn.Module,
    images: np.ndarray,
    items: np.ndarray,
    epochs: int,
    seed: int = 0,
) -> nn.Module:
    """Train the backbone to tell every item apart (multi-label, an
    auxiliary linear head on the pooled features), as a backbone pretrained
    on a large data set knows many things besides the task's class."""
    gen = torch.Generator().manual_seed(seed)
    aux = nn.Linear(model.head.fc.in_features, items.shape[1])
    x, y = to_tensor(images), torch.from_numpy(items)
    params = list(model.backbone.parameters()) + list(aux.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(128):
            feats = model.neck(model.backbone(x[idx]))[0]
            loss = nn.functional.binary_cross_entropy_with_logits(
                aux(feats), y[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def pooled_features(model: nn.Module, images: np.ndarray) -> torch.Tensor:
    """The head's input for ``images`` (no gradient)."""
    with torch.no_grad():
        return torch.cat(
            [
                model.neck(model.backbone(x))[0]
                for x in to_tensor(images).split(512)
            ]
        )


def fit_head(
    model: nn.Module,
    feats: torch.Tensor,
    labels: np.ndarray,
    steps: int = 300,
    seed: int = 0,
) -> nn.Module:
    """Train the linear head on frozen pooled features (full batch)."""
    torch.manual_seed(seed)
    model.head.fc.reset_parameters()
    y = torch.from_numpy(np.asarray(labels)).long()
    opt = torch.optim.Adam(model.head.fc.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model.head.fc(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model
