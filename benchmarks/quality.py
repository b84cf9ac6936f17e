"""Localisation and faithfulness of CAM methods on images with known boxes.

Tiny CNN and ViT classifiers (``benchmarks/configs/shapes/``) are trained,
seeded and cached, on generated images (a class-defining shape on clutter,
random position and scale, distractor strokes; square and non-square variants);
every validation image is explained for its ground-truth class and scored:
pointing game (peak in the box), energy in the box (chance level = the
box's area share) and deletion / insertion AUC. A random map is scored as
the chance baseline. The real-weights demo model (EfficientNet-Lite0,
ImageNet) is scored on demo photos whose object box is obvious.
"""

import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmcam_ext.apis.cam_engine import CAMEngine
from mmcam_ext.evaluation.faithfulness import deletion_insertion_auc
from mmcam_ext.evaluation.localization import (
    box_area_fraction,
    energy_in_box,
    pointing_game,
)
from mmcam_ext.methods.base import BaseCAMMethod
from mmcam_ext.methods.builder import MethodLike, build_method
from mmcam_ext.methods.gradient import GRADIENT_METHODS

__all__ = [
    'QualityCase',
    'QualityRow',
    'CNN_METHODS',
    'VIT_METHODS',
    'DEMO_BOXES',
    'score_maps',
    'shapes_quality',
    'demo_quality',
    'random_maps',
]

Box = Tuple[int, int, int, int]
#: A method name, or ``(label, method name or instance)``.
MethodSpec = Union[str, Tuple[str, Union[str, BaseCAMMethod]]]

CNN_METHODS = (*GRADIENT_METHODS, 'ScoreCAM', 'AblationCAM')
VIT_METHODS = CNN_METHODS + (
    'AttentionRollout',
    'GradAttention',
    'AttentionRelevance',
)
RANDOM = 'Random (chance)'

#: Object boxes (x0, y0, x1, y1) in the original photo, by inspection.
DEMO_BOXES: Dict[str, Box] = {
    'chelsea': (120, 60, 350, 275),  # the cat's face (eyes to chin)
    'coffee': (170, 15, 415, 305),  # the cup, without the saucer
}


@dataclass(frozen=True)
class QualityCase:
    """One trained shapes classifier.

    Args:
        arch: ``'cnn'`` or ``'vit'``.
        size: ``(height, width)`` of the generated images.
        epochs: Training epochs.
        extra_cfg: Config overrides for training (e.g. fewer images).
    """

    arch: str
    size: Tuple[int, int] = (64, 64)
    epochs: int = 10
    extra_cfg: Dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = {'cnn': 'ResNet-18 (CIFAR stem)', 'vit': 'ViT (4 layers)'}
        return f'{name[self.arch]} {self.size[0]}x{self.size[1]}'


@dataclass
class QualityRow:
    """Mean scores of one method on one model."""

    model: str
    method: str
    pointing: float
    energy: float
    chance_energy: float
    deletion: float
    insertion: float
    ms_per_image: float
    num: int


def random_maps(num: int, size: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth random maps (8x8 noise upsampled): the chance baseline."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(num, 1, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(
        low, size=size, mode='bilinear', align_corners=False
    )[:, 0].numpy()


def score_maps(
    model,
    inputs: torch.Tensor,
    maps: np.ndarray,
    targets: torch.Tensor,
    boxes: Sequence[Box],
    steps: int,
) -> Dict[str, float]:
    """Mean pointing game, energy in box, chance energy and AUCs."""
    pg = [pointing_game(m, b) for m, b in zip(maps, boxes)]
    eib = [energy_in_box(m, b) for m, b in zip(maps, boxes)]
    chance = [box_area_fraction(m.shape, b) for m, b in zip(maps, boxes)]
    dels, inss = [], []
    for i in range(0, len(inputs), 32):
        d, ins = deletion_insertion_auc(
            model,
            inputs[i : i + 32],
            torch.as_tensor(maps[i : i + 32]).to(inputs.device),
            targets[i : i + 32],
            steps,
        )
        dels.append(d)
        inss.append(ins)
    return dict(
        pointing=float(np.mean(pg)),
        energy=float(np.mean(eib)),
        chance_energy=float(np.mean(chance)),
        deletion=float(torch.cat(dels).mean()),
        insertion=float(torch.cat(inss).mean()),
    )


def explain_maps(
    engine: CAMEngine,
    inputs: torch.Tensor,
    method: MethodLike,
    targets: torch.Tensor,
    batch: int = 20,
) -> Tuple[np.ndarray, float]:
    """Maps of one method for one target per image, and ms per image.

    Args:
        engine (CAMEngine): The engine of the model.
        inputs (torch.Tensor): Preprocessed images ``(N, 3, H, W)``.
        method (str | dict | BaseCAMMethod): The method.
        targets (torch.Tensor): One class per image ``(N,)``.
        batch (int): Images per call. Defaults to 20.

    Returns:
        tuple[np.ndarray, float]: Maps ``(N, H, W)``; ms per image.
    """
    built = build_method(method)
    start = time.perf_counter()
    out = []
    for i in range(0, len(inputs), batch):
        res = engine.explain(
            inputs[i : i + batch],
            [built],
            targets=targets[i : i + batch].cpu().numpy(),
        )
        out.append(res.maps[built.name][:, 0])
    ms = 1000 * (time.perf_counter() - start) / len(inputs)
    return np.concatenate(out), ms


def load_split(cfg, data_root: str, model, limit: Optional[int] = None):
    """Preprocessed val images, ground-truth labels and boxes."""
    from mmcam_ext.apis.data import build_test_pipeline, load_image

    from .datasets.shapes import load_boxes

    boxes = load_boxes(data_root, 'val')
    classes = sorted({rel.split('/')[0] for rel in boxes})
    items = sorted(boxes.items())
    if limit is not None and limit < len(items):
        # A stride, not a prefix: the files are sorted by class.
        items = items[:: -(-len(items) // limit)][:limit]
    pipeline = build_test_pipeline(cfg)
    packed = []
    for rel, _ in items:
        img = load_image(osp.join(data_root, 'val', rel))
        packed.append(
            pipeline(
                dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            )['inputs']
        )
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=packed), False)['inputs']
    labels = torch.tensor([classes.index(r.split('/')[0]) for r, _ in items])
    return inputs, labels, [b for _, b in items]


def _split(spec: MethodSpec) -> Tuple[str, Union[str, BaseCAMMethod]]:
    return (spec, spec) if isinstance(spec, str) else spec


def shapes_quality(
    case: QualityCase,
    work_dir: str,
    methods: Sequence[MethodSpec],
    steps: int = 16,
    limit: Optional[int] = None,
    batch: int = 20,
) -> Tuple[List[QualityRow], float]:
    """Train (cached) and score every method; also returns val accuracy."""
    from mmcam_ext.apis.inferencer import build_model

    from .datasets.shapes_train import train_shapes_classifier

    cfg, ckpt = train_shapes_classifier(
        case.arch, work_dir, case.epochs, case.size, 0, case.extra_cfg or None
    )
    model = build_model(cfg, ckpt)
    data_root = cfg.val_dataloader.dataset.data_root
    inputs, labels, boxes = load_split(cfg, data_root, model, limit)
    with torch.no_grad():
        from mmcam_ext.utils.model import classifier_logits

        acc = float(
            (classifier_logits(model, inputs).argmax(-1) == labels)
            .float()
            .mean()
        )
    engine = CAMEngine(model)
    rows = []
    for spec in (RANDOM, *methods):
        name, method = _split(spec)
        if name == RANDOM:
            maps, ms = random_maps(len(inputs), case.size), 0.0
        else:
            maps, ms = explain_maps(engine, inputs, method, labels, batch)
        scores = score_maps(model, inputs, maps, labels, boxes, steps)
        rows.append(
            QualityRow(
                case.label, name, ms_per_image=ms, num=len(inputs), **scores
            )
        )
    return rows, acc


def _demo_box(pipeline, shape: Tuple[int, int], box: Box) -> Box:
    """The box after the test pipeline: run the pipeline on its mask."""
    mask = np.zeros((*shape, 3), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    out = pipeline(dict(img=mask, img_shape=shape, ori_shape=shape))
    ys, xs = np.nonzero(out['inputs'][0].numpy() > 127)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def demo_quality(
    work_dir: str, methods: Sequence[MethodSpec], steps: int = 16
) -> List[QualityRow]:
    """Scores of the real-weights demo model on the boxed demo photos,
    explaining its top-1 prediction."""
    from mmcam_ext.apis.data import build_test_pipeline, load_image
    from mmcam_ext.apis.inferencer import build_model
    from mmcam_ext.demo import prepare_demo

    assets = prepare_demo(work_dir)
    model = build_model(assets.config, assets.checkpoint)
    pipeline = build_test_pipeline(model._config)
    paths = {osp.splitext(osp.basename(p))[0]: p for p in assets.images}
    names = [n for n in DEMO_BOXES if n in paths]
    packed, boxes = [], []
    for name in names:
        img = load_image(paths[name])
        packed.append(
            pipeline(
                dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            )['inputs']
        )
        boxes.append(_demo_box(pipeline, img.shape[:2], DEMO_BOXES[name]))
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=packed), False)['inputs']
    engine = CAMEngine(model)
    targets = torch.as_tensor(
        engine.explain(inputs, ['GradCAM']).targets[:, 0]
    )
    rows = []
    label = f'EfficientNet-Lite0 (ImageNet) on {", ".join(names)}'
    for spec in (RANDOM, *methods):
        name, method = _split(spec)
        if name == RANDOM:
            maps, ms = random_maps(len(inputs), tuple(inputs.shape[-2:])), 0.0
        else:
            maps, ms = explain_maps(
                engine, inputs, method, targets, len(inputs)
            )
        scores = score_maps(model, inputs, maps, targets, boxes, steps)
        rows.append(
            QualityRow(label, name, ms_per_image=ms, num=len(inputs), **scores)
        )
    return rows
