"""Dumps with descriptors written per the on-disk contract, for the
pattern-analysis tests: planted groups of false positives with known
members, correct samples, maps, images and (optionally) two DDP shards."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmcam_ext.fileio import write_index, write_png
from mmcam_ext.utils.descriptors import DESCRIPTOR_DIM, EVIDENCE_DIM

__all__ = ['make_dump', 'blob_map', 'CLASSES']

CLASSES = ('background', 'cat', 'dog')
SIDE = 32
#: Where each planted group's evidence lies (map blob centre) and its
#: colour in the image.
PLACES = ((6, 6), (25, 25), (6, 25), (25, 6))
COLOURS = ((250, 30, 30), (30, 250, 30), (30, 30, 250), (250, 250, 30))


def blob_map(centre, side: int = SIDE, width: float = 3.0) -> np.ndarray:
    """A Gaussian blob at ``centre`` (row, col), peak 1."""
    yy, xx = np.mgrid[:side, :side]
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return np.exp(-d2 / (2 * width**2)).astype(np.float32)


def _image(folder: Path, idx: int, centre, colour) -> str:
    img = np.full((64, 64, 3), 90, np.uint8)
    y, x = 2 * centre[0], 2 * centre[1]
    img[max(0, y - 6) : y + 6, max(0, x - 6) : x + 6] = colour
    path = folder / 'images' / f'{idx}.png'
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, img)
    return str(path)


def make_dump(
    folder: Path,
    groups: Sequence[int] = (12, 12, 12),
    correct: int = 24,
    fp_class: int = 1,
    method: str = 'GradCAM',
    shards: int = 1,
    descriptors: bool = True,
    meta: Optional[dict] = None,
    noise: float = 0.3,
    seed: int = 0,
) -> Dict[int, int]:
    """Write a hook-style dump; return dataset_index -> planted group
    (-1 for correct samples).

    False positives of ``fp_class`` come in ``groups`` planted groups, each
    with its own evidence direction, map place and image colour; the
    ``correct`` samples are correctly rejected negatives whose evidence is
    that of group 0 (look-alikes of the first pattern).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    centres = rng.random((len(groups), EVIDENCE_DIM)).astype(np.float32)
    truth: Dict[int, int] = {}
    rows: List[dict] = []
    desc = []
    maps = []
    plan = [g for g, n in enumerate(groups) for _ in range(n)]
    plan += [-1] * correct
    order = rng.permutation(len(plan))
    for idx, k in enumerate(np.array(plan)[order]):
        k = int(k)
        truth[idx] = k
        g = max(k, 0)
        ev = centres[g] + noise * rng.random(EVIDENCE_DIM).astype(np.float32)
        place = PLACES[g % len(PLACES)]
        cam = blob_map(place)
        layout = cam.reshape(8, 4, 8, 4).mean((1, 3)).ravel()
        desc.append(np.concatenate([ev, layout / layout.max()]))
        maps.append(cam)
        wrong = k >= 0
        rows.append(
            dict(
                dataset_index=idx,
                img_path=_image(folder, idx, place, COLOURS[g % 4]),
                gt=0 if wrong else int(rng.integers(0, 2)) * 2,
                pred=fp_class if wrong else None,
                score=round(0.6 + 0.3 * rng.random(), 3),
                misclassified=wrong,
                target_kind='pred',
                method=method,
                blank=False,
                rank=idx % shards,
            )
        )
    for row in rows:
        if row['pred'] is None:
            row['pred'] = row['gt']
        row['target'] = row['pred']
        row['target_score'] = row['score']
    _store(folder, rows, np.stack(maps), np.stack(desc), shards, descriptors)
    write_index(
        folder, rows, 'json', dict(classes=list(CLASSES), **(meta or {}))
    )
    return truth


def _store(folder, rows, maps, desc, shards, descriptors) -> None:
    """maps/ and descriptors/ arrays, one per rank, rows pointing in."""
    (folder / 'maps').mkdir(exist_ok=True)
    (folder / 'descriptors').mkdir(exist_ok=True)
    assert desc.shape[1] == DESCRIPTOR_DIM
    for rank in range(shards):
        sel = [i for i, r in enumerate(rows) if r['rank'] == rank]
        suffix = f'.rank{rank}' if shards > 1 else ''
        method = rows[0]['method']
        raw = f'maps/{method}_pred_{SIDE}x{SIDE}{suffix}.npy'
        np.save(folder / raw, maps[sel].astype(np.float16))
        dfile = f'descriptors/{method}_pred{suffix}.npy'
        if descriptors:
            np.save(folder / dfile, desc[sel].astype(np.float16))
        for at, i in enumerate(sel):
            rows[i].update(raw_file=raw, raw_row=at)
            if descriptors:
                rows[i].update(desc_file=dfile, desc_row=at)
