"""Grouping descriptors into patterns: k-means, k chosen by silhouette.

Descriptors become clustering features by L2-normalising the evidence part
(what the model looked at) and the layout part (where), the layout scaled
by ``layout_weight``. K-means runs for every k in ``2..max_patterns`` (a
fixed seed: the same input gives the same patterns; on a seeded subsample
of :data:`SILHOUETTE_SAMPLE` samples when there are more); the k with the
best silhouette is fitted on all samples, and clusters smaller than
``min_size`` are folded into "other" (label -1).
"""

from typing import Any, Tuple

import numpy as np

from ..errors import InputError
from ..utils.descriptors import split_descriptors

__all__ = [
    'INSTALL_HINT',
    'require_sklearn',
    'pattern_features',
    'cluster_patterns',
    'SILHOUETTE_SAMPLE',
]

INSTALL_HINT = 'pip install "mmcam_ext[analysis]"'
#: Samples k is chosen on (a seeded subsample beyond it; the chosen k is
#: then fitted on all): the silhouette needs O(n^2) distances.
SILHOUETTE_SAMPLE = 3000


def require_sklearn() -> Any:
    """The ``sklearn`` module, or an error naming the install command.

    Returns:
        module: ``sklearn``.

    Raises:
        InputError: scikit-learn is not installed.
    """
    try:
        import sklearn
        import sklearn.cluster
        import sklearn.metrics
    except ImportError:
        raise InputError(
            'Pattern discovery needs scikit-learn, which is not installed: '
            f'{INSTALL_HINT}'
        ) from None
    return sklearn


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def pattern_features(
    desc: np.ndarray, layout_weight: float = 0.0
) -> np.ndarray:
    """Clustering features of ``(n, DESCRIPTOR_DIM)`` descriptors.

    Args:
        desc (np.ndarray): Descriptors.
        layout_weight (float): Weight of the unit-length layout part next
            to the unit-length evidence part; 0 clusters on evidence only.
            Defaults to 0.0.

    Returns:
        np.ndarray: float32 ``(n, d)`` features, unit length when
        ``layout_weight`` is 0.
    """
    evidence, layout = split_descriptors(np.asarray(desc, np.float32))
    parts = [_unit(evidence)]
    if layout_weight > 0:
        parts.append(layout_weight * _unit(layout))
    return np.concatenate(parts, 1).astype(np.float32)


def cluster_patterns(
    feats: np.ndarray,
    max_patterns: int = 8,
    min_size: int = 3,
    seed: int = 0,
) -> Tuple[np.ndarray, int]:
    """Labels of ``feats``: patterns ``0..k-1``, "other" -1.

    Args:
        feats (np.ndarray): ``(n, d)`` features (:func:`pattern_features`).
        max_patterns (int): Largest k tried. Defaults to 8.
        min_size (int): Clusters smaller than this are folded into other.
            Defaults to 3.
        seed (int): Seed of k-means and of the silhouette subsample.
            Defaults to 0.

    Returns:
        tuple[np.ndarray, int]: Labels ``(n,)`` and the k chosen.

    Raises:
        InputError: Fewer than ``2 * min_size`` samples (or than 3).
    """
    require_sklearn()
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(feats)
    if n < max(3, 2 * min_size):
        raise InputError(
            f'{n} samples are too few to find patterns (at least '
            f'{max(3, 2 * min_size)} with min_size={min_size}).'
        )
    rng = np.random.default_rng(seed)
    sub = (
        np.sort(rng.choice(n, SILHOUETTE_SAMPLE, replace=False))
        if n > SILHOUETTE_SAMPLE
        else np.arange(n)
    )
    best = (-2.0, 2)
    for k in range(2, min(max_patterns, len(sub) - 1) + 1):
        labels = KMeans(k, n_init=3, random_state=seed).fit_predict(feats[sub])
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(feats[sub], labels))
        if score > best[0]:
            best = (score, k)
    k = best[1]
    labels = KMeans(k, n_init=3, random_state=seed).fit_predict(feats)
    return _fold_small(labels, min_size), k


def _fold_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Small clusters -> -1; the rest renumbered by size, largest 0."""
    ids, counts = np.unique(labels, return_counts=True)
    keep = [i for i, c in sorted(zip(ids, counts), key=lambda t: -t[1])]
    keep = [i for i in keep if counts[ids == i][0] >= min_size]
    out = np.full_like(labels, -1)
    for new, old in enumerate(keep):
        out[labels == old] = new
    return out
