"""Localisation quality of the attention methods next to Grad-CAM.

Trains (or reuses, cached) the tiny cls-token ViT of
``benchmarks/configs/shapes/shapes_vit.py`` on generated shapes with known
object boxes, explains every validation image for its ground-truth class
and prints a Markdown table of pointing game and energy-in-box per method.
Grad-CAM is run on every candidate layer and reported on the best one (and
on the resolver's default), so a poor layer choice does not decide it.

Example:
    python tools/benchmark_attention.py --work-dir work_dirs/shapes
"""

import argparse
import sys
import time
from pathlib import Path
from typing import List, Sequence, Tuple

# benchmarks/ lives next to tools/ in the repository (not in the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch
from mmengine.logging import print_log

from benchmarks.datasets.shapes import load_boxes
from benchmarks.datasets.shapes_train import train_shapes_classifier
from mmcam_ext.apis.cam_engine import CAMEngine
from mmcam_ext.apis.inferencer import build_model
from mmcam_ext.evaluation.localization import (
    box_area_fraction,
    energy_in_box,
    pointing_game,
)
from mmcam_ext.methods import build_method

Row = Tuple[str, str, float, float, float]  # method, layer, PG, EiB, ms/img

# (label, method name, constructor options)
ATTENTION_METHODS = [
    ('attention_rollout (mean)', 'attention_rollout', {}),
    (
        'attention_rollout (max, discard 0.9)',
        'attention_rollout',
        dict(head_fusion='max', discard_ratio=0.9),
    ),
    ('grad_attention', 'grad_attention', {}),
    ('attention_relevance', 'attention_relevance', {}),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir',
        default='work_dirs/shapes',
        help='Data, training runs and cached checkpoints',
    )
    parser.add_argument(
        '--epochs',
        type=int,
        default=30,
        help='Training epochs of the tiny ViT',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=20)
    return parser.parse_args()


def load_val(
    data_root: str, model: torch.nn.Module
) -> Tuple[torch.Tensor, torch.Tensor, List[tuple]]:
    """Preprocessed val images, labels (sorted class folders) and boxes."""
    boxes = load_boxes(data_root, 'val')
    classes = sorted({rel.split('/')[0] for rel in boxes})
    images, labels, box_list = [], [], []
    for rel, box in sorted(boxes.items()):
        img = cv2.imread(str(Path(data_root) / 'val' / rel))  # BGR, as
        images.append(torch.from_numpy(img).permute(2, 0, 1))  # the loader
        labels.append(classes.index(rel.split('/')[0]))
        box_list.append(box)
    data = model.data_preprocessor(dict(inputs=images), training=False)
    return data['inputs'], torch.tensor(labels), box_list


def explain(
    engine: CAMEngine,
    method,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
) -> Tuple[np.ndarray, float]:
    """Maps ``(N, H, W)`` for the ground-truth classes and ms per image."""
    maps = []
    start = time.perf_counter()
    for i in range(0, len(inputs), batch_size):
        res = engine.explain(
            inputs[i : i + batch_size],
            methods=[method],
            targets=labels[i : i + batch_size],
        )
        maps.append(res.maps[method.name][:, 0])
    elapsed = (time.perf_counter() - start) * 1000 / len(inputs)
    return np.concatenate(maps), elapsed


def score(maps: np.ndarray, boxes: Sequence[tuple]) -> Tuple[float, float]:
    """Mean pointing-game hit rate and mean energy in box."""
    hits = [pointing_game(m, b) for m, b in zip(maps, boxes)]
    energy = [energy_in_box(m, b) for m, b in zip(maps, boxes)]
    return float(np.mean(hits)), float(np.mean(energy))


def gradcam_rows(model, inputs, labels, boxes, batch_size) -> List[Row]:
    """Grad-CAM on every block's ln1 and block output, best first."""
    n_blocks = len(model.backbone.layers)
    layers = [f'backbone.layers.{i}.ln1' for i in range(n_blocks)]
    # The last block's output gets no gradient from the cls token.
    layers += [f'backbone.layers.{i}' for i in range(n_blocks - 1)]
    rows = []
    for layer in layers:
        engine = CAMEngine(model, target_layers=[layer])
        maps, ms = explain(
            engine, build_method('gradcam'), inputs, labels, batch_size
        )
        rows.append(('gradcam', layer, *score(maps, boxes), ms))
    return sorted(rows, key=lambda r: (r[2], r[3]), reverse=True)


def markdown(rows: List[Row], chance: float, accuracy: float) -> str:
    lines = [
        f'Tiny ViT (4 blocks, 8x8 patches), val accuracy {accuracy:.1%}, '
        f'{chance:.1%} mean box area (energy-in-box of a uniform map).',
        '',
        '| method | layer | pointing game | energy in box | ms / image |',
        '|---|---|---|---|---|',
    ]
    for method, layer, pg, eib, ms in rows:
        lines.append(
            f'| {method} | {layer} | {pg:.1%} | {eib:.1%} | {ms:.1f} |'
        )
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    cfg, ckpt = train_shapes_classifier(
        'vit', args.work_dir, args.epochs, seed=args.seed
    )
    model = build_model(cfg, pretrained=ckpt)
    data_root = cfg.val_dataloader.dataset.data_root
    inputs, labels, boxes = load_val(data_root, model)
    with torch.no_grad():
        accuracy = float(
            (model(inputs, mode='tensor').argmax(1) == labels).float().mean()
        )
    print_log(
        f'[benchmark] {len(inputs)} val images, accuracy {accuracy:.1%}',
        logger='current',
    )
    engine = CAMEngine(model)
    default = engine.spec_for(inputs).layers[0]  # resolves once, untimed
    rows: List[Row] = []
    for label, name, options in ATTENTION_METHODS:
        maps, ms = explain(
            engine,
            build_method(name, **options),
            inputs,
            labels,
            args.batch_size,
        )
        rows.append((label, 'all blocks', *score(maps, boxes), ms))
    grad_rows = gradcam_rows(model, inputs, labels, boxes, args.batch_size)
    best = grad_rows[0]
    rows.append(('gradcam (best layer)', *best[1:]))
    rows += [
        ('gradcam (resolver default)', *r[1:])
        for r in grad_rows
        if r[1] == default and r is not best
    ]
    chance = float(
        np.mean([box_area_fraction(inputs.shape[-2:], b) for b in boxes])
    )
    print(markdown(rows, chance, accuracy))
    print('\nGrad-CAM per layer:\n' + markdown(grad_rows, chance, accuracy))


if __name__ == '__main__':
    main()
