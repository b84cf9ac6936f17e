"""Localisation of the attention methods next to Grad-CAM on trained tiny
transformers, and their class specificity on images holding two objects.

Each case trains (or reuses, cached) a tiny transformer of
``benchmarks/configs/shapes/`` on the generated shapes data: a class-token
ViT and a Swin (window attention, shifted windows, patch merging, pooled
head). Every validation image is explained for its ground-truth class and
scored with the suite's shared scoring (:func:`benchmarks.quality.score_maps`:
pointing game, energy in box, deletion/insertion AUC). Grad-CAM is shown at
the resolver's default layer and at the best of every block output (chosen
on this validation set, so that row is optimistic).

Class specificity: ``pairs`` images hold two objects of different classes;
each is explained for both classes. "Own box" is the share of targets whose
map peak lies in that target's object, "other box" the share whose peak lies
in the other object; a class-agnostic method (rollout) gives the same map
for both targets, so at most half of its peaks can be right.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from mmcam_ext.apis.cam_engine import CAMEngine
from mmcam_ext.evaluation.localization import energy_in_box, pointing_game
from mmcam_ext.methods.builder import MethodLike
from mmcam_ext.utils.model import classifier_logits

from .datasets.shapes import SHAPE_CLASSES, ShapesConfig, draw_pair
from .quality import explain_maps, load_split, random_maps, score_maps

__all__ = [
    'AttentionCase',
    'AttentionRow',
    'PairRow',
    'CASES',
    'ATTENTION_METHODS',
    'run_case',
    'pair_images',
    'markdown',
]

Box = Tuple[int, int, int, int]
SHAPES_DATA = {
    'shapes_data.train_per_class': 150,
    'shapes_data.val_per_class': 40,
}
#: (label, method config) of the attention rows.
ATTENTION_METHODS: List[Tuple[str, MethodLike]] = [
    ('attention_rollout (mean)', 'attention_rollout'),
    (
        'attention_rollout (max, discard 0.9)',
        dict(type='attention_rollout', head_fusion='max', discard_ratio=0.9),
    ),
    ('grad_attention', 'grad_attention'),
    ('attention_relevance', 'attention_relevance'),
]
RANDOM = 'random (chance)'


@dataclass(frozen=True)
class AttentionCase:
    """One trained tiny transformer.

    Args:
        arch (str): ``'vit'`` or ``'swin'`` (``benchmarks/configs/shapes``).
        label (str): Name in the tables.
        epochs (int): Training epochs.
        size (tuple[int, int]): Image ``(height, width)``. Defaults to
            ``(64, 64)``.
        extra_cfg (dict): Config overrides for training. Defaults to
            :data:`SHAPES_DATA`.
    """

    arch: str
    label: str
    epochs: int
    size: Tuple[int, int] = (64, 64)
    extra_cfg: Dict = field(default_factory=lambda: dict(SHAPES_DATA))


CASES = (
    AttentionCase('vit', 'Tiny ViT (4 blocks, cls token)', 40),
    AttentionCase('swin', 'Tiny Swin (3 stages, windows, shifts)', 30),
)


@dataclass
class AttentionRow:
    """Scores of one method on one model's validation images."""

    model: str
    method: str
    layer: str
    pointing: float
    energy: float
    chance_energy: float
    deletion: float
    insertion: float
    ms_per_image: float


@dataclass
class PairRow:
    """Class specificity of one method on two-object images."""

    model: str
    method: str
    own_box: float
    other_box: float
    own_energy: float
    other_energy: float


def block_layers(model: torch.nn.Module) -> List[str]:
    """Every attention block's output (Grad-CAM candidates).

    Args:
        model (torch.nn.Module): The classifier.

    Returns:
        list[str]: Module names, e.g. ``backbone.layers.2``.
    """
    from mmcam_ext.methods.attention_capture import AttentionCapture

    names = [name for name, _, _ in AttentionCapture(model).targets]
    return [f'backbone.{name.rsplit(".", 1)[0]}' for name in names]


def _row(case, label, layer, model, inputs, maps, labels, boxes, ms, steps):
    scores = score_maps(model, inputs, maps, labels, boxes, steps)
    return AttentionRow(case.label, label, layer, ms_per_image=ms, **scores)


def _gradcam_rows(case, model, inputs, labels, boxes, steps):
    """Grad-CAM at the resolver's layer and at the best block output."""
    default = CAMEngine(model).spec_for(inputs).layers[0]
    rows = []
    for layer in dict.fromkeys([default, *block_layers(model)]):
        try:
            maps, ms = explain_maps(
                CAMEngine(model, [layer]), inputs, 'gradcam', labels
            )
        except ValueError:  # e.g. a ViT's last block: zero patch gradient
            continue
        rows.append(
            _row(
                case,
                'gradcam',
                layer,
                model,
                inputs,
                maps,
                labels,
                boxes,
                ms,
                steps,
            )
        )
    best = max(rows, key=lambda r: (r.pointing, r.energy))
    first = next(r for r in rows if r.layer == default)
    first.method, best.method = (
        'gradcam (resolver default)',
        'gradcam (best block)',
    )
    return [first] if best is first else [first, best]


def run_case(
    case: AttentionCase,
    work_dir: str,
    steps: int = 16,
    limit: Optional[int] = None,
    pairs: int = 60,
) -> Tuple[List[AttentionRow], List[PairRow], float]:
    """Train (cached), score every method, and the two-object check.

    Args:
        case (AttentionCase): The model.
        work_dir (str): Data, trainings and cached checkpoints.
        steps (int): Deletion/insertion steps. Defaults to 16.
        limit (int, optional): Validation images (``None``: all).
        pairs (int): Two-object images. Defaults to 60.

    Returns:
        tuple: Localisation rows, pair rows and validation accuracy.
    """
    from mmcam_ext.apis.inferencer import build_model

    from .datasets.shapes_train import train_shapes_classifier

    cfg, ckpt = train_shapes_classifier(
        case.arch, work_dir, case.epochs, case.size, 0, case.extra_cfg
    )
    model = build_model(cfg, ckpt)
    root = cfg.val_dataloader.dataset.data_root
    inputs, labels, boxes = load_split(cfg, root, model, limit)
    with torch.no_grad():
        pred = classifier_logits(model, inputs).argmax(-1)
    accuracy = float((pred == labels).float().mean())
    engine = CAMEngine(model)
    rows = [
        _row(
            case,
            RANDOM,
            '-',
            model,
            inputs,
            random_maps(len(inputs), case.size),
            labels,
            boxes,
            0.0,
            steps,
        )
    ]
    for label, method in ATTENTION_METHODS:
        maps, ms = explain_maps(engine, inputs, method, labels)
        rows.append(
            _row(
                case,
                label,
                'all blocks',
                model,
                inputs,
                maps,
                labels,
                boxes,
                ms,
                steps,
            )
        )
    rows += _gradcam_rows(case, model, inputs, labels, boxes, steps)
    pair_rows = pair_scores(case, cfg, model, pairs)
    return rows, pair_rows, accuracy


def pair_images(
    cfg: Config, model: torch.nn.Module, num: int, size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor, List[Tuple[Box, Box]]]:
    """Preprocessed two-object images, their two classes and boxes.

    Args:
        cfg (Config): The training config (test pipeline).
        model (torch.nn.Module): The classifier (data preprocessor).
        num (int): Number of images; class pairs cycle through all pairs.
        size (tuple[int, int]): Image ``(height, width)``.

    Returns:
        tuple: ``(N, 3, H, W)`` inputs, ``(N, 2)`` classes, ``N`` box pairs.
    """
    from mmcam_ext.apis.data import build_test_pipeline

    rng = np.random.default_rng(2024)
    spec = cfg.get('shapes_data', {})
    draw = ShapesConfig(
        size=tuple(size), scale=tuple(spec.get('scale', (0.3, 0.5)))
    )
    combos = [
        (a, b)
        for a in range(len(SHAPE_CLASSES))
        for b in range(len(SHAPE_CLASSES))
        if a != b
    ]
    pipeline = build_test_pipeline(cfg)
    packed, classes, boxes = [], [], []
    for i in range(num):
        a, b = combos[i % len(combos)]
        rgb, pair = draw_pair(rng, (SHAPE_CLASSES[a], SHAPE_CLASSES[b]), draw)
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # as images load
        data = dict(img=bgr, img_shape=bgr.shape[:2], ori_shape=bgr.shape[:2])
        packed.append(pipeline(data)['inputs'])
        classes.append((a, b))
        boxes.append(pair)
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=packed), False)['inputs']
    return inputs, torch.tensor(classes), boxes


def _pair_row(case, label, maps_a, maps_b, boxes) -> PairRow:
    own, other, own_e, other_e = [], [], [], []
    for ma, mb, (ba, bb) in zip(maps_a, maps_b, boxes):
        for m, mine, theirs in ((ma, ba, bb), (mb, bb, ba)):
            own.append(pointing_game(m, mine))
            other.append(pointing_game(m, theirs))
            own_e.append(energy_in_box(m, mine))
            other_e.append(energy_in_box(m, theirs))
    return PairRow(
        case.label,
        label,
        float(np.mean(own)),
        float(np.mean(other)),
        float(np.mean(own_e)),
        float(np.mean(other_e)),
    )


def pair_scores(
    case: AttentionCase, cfg: Config, model: torch.nn.Module, num: int
) -> List[PairRow]:
    """Own-box and other-box pointing for every method on pair images.

    Args:
        case (AttentionCase): The model's case.
        cfg (Config): Its config.
        model (torch.nn.Module): The trained classifier.
        num (int): Number of two-object images.

    Returns:
        list[PairRow]: One row per method.
    """
    if num <= 0:
        return []
    inputs, classes, boxes = pair_images(cfg, model, num, case.size)
    engine = CAMEngine(model)
    methods: List[Tuple[str, Union[str, MethodLike]]] = [
        *ATTENTION_METHODS,
        ('gradcam (resolver default)', 'gradcam'),
    ]
    rows = []
    for label, method in methods:
        maps_a, _ = explain_maps(engine, inputs, method, classes[:, 0])
        maps_b, _ = explain_maps(engine, inputs, method, classes[:, 1])
        rows.append(_pair_row(case, label, maps_a, maps_b, boxes))
    return rows


def _pct(value: float) -> str:
    return f'{100 * value:.1f}%'


def markdown(
    rows: Sequence[AttentionRow],
    pairs: Sequence[PairRow],
    notes: Sequence[str] = (),
) -> str:
    """The two tables of the README's localisation section.

    Args:
        rows (Sequence[AttentionRow]): Localisation rows.
        pairs (Sequence[PairRow]): Two-object rows.
        notes (Sequence[str]): Lines printed under the tables.

    Returns:
        str: Markdown.
    """
    lines = [
        '| model | method | layer | pointing game | energy in box (chance) '
        '| deletion AUC | insertion AUC |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r.model} | {r.method} | {r.layer} | {_pct(r.pointing)} | '
            f'{_pct(r.energy)} ({_pct(r.chance_energy)}) | '
            f'{r.deletion:.3f} | {r.insertion:.3f} |'
        )
    if pairs:
        lines += [
            '',
            '| model | method | peak in own box | peak in other box '
            '| energy in own box | energy in other box |',
            '|---|---|---|---|---|---|',
        ]
        for p in pairs:
            lines.append(
                f'| {p.model} | {p.method} | {_pct(p.own_box)} | '
                f'{_pct(p.other_box)} | {_pct(p.own_energy)} | '
                f'{_pct(p.other_energy)} |'
            )
    return '\n'.join([*lines, '', *notes])
