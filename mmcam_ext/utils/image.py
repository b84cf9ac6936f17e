"""Image helpers shared by the inferencer, the hook and the visualizer."""

from typing import Optional, Sequence

import numpy as np

__all__ = ['CHANNEL_ORDERS', 'to_rgb', 'class_text']

CHANNEL_ORDERS = ('rgb', 'bgr')


def to_rgb(img: np.ndarray, channel_order: str) -> np.ndarray:
    """Return an ``HxWx3`` uint8 image in RGB order.

    Args:
        img (np.ndarray): ``HxWx3`` (or ``3xHxW``, as in
            ``data_batch['inputs']``) image.
        channel_order (str): ``'bgr'`` (``mmcv.imread``, MMPretrain's raw
            inputs) or ``'rgb'``.

    Returns:
        np.ndarray: The ``HxWx3`` uint8 RGB image.

    Raises:
        ValueError: An unknown ``channel_order`` or an image that is not
            ``HxWx3`` (or ``3xHxW``, or single-channel).
    """
    order = channel_order.lower()
    if order not in CHANNEL_ORDERS:
        raise ValueError(
            f'channel_order must be one of {CHANNEL_ORDERS}, '
            f'got {channel_order!r}.'
        )
    img = np.asarray(img)
    if (
        img.ndim == 3
        and img.shape[0] in (1, 3)
        and img.shape[-1] not in (1, 3)
    ):
        img = img.transpose(1, 2, 0)
    if img.ndim == 2 or img.shape[-1] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, -1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f'Expected an HxWx3 image, got shape {img.shape}.')
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1] if order == 'bgr' else img)


def class_text(
    label: Optional[int],
    classes: Optional[Sequence[str]] = None,
    missing: str = '',
) -> str:
    """``'tabby (281)'`` for a label with a known name, else ``'281'``.

    Args:
        label (int, optional): Class index (``None`` or ``''`` if unknown).
        classes (Sequence[str], optional): Class names. Defaults to None.
        missing (str): Text for an unknown label. Defaults to ``''``.

    Returns:
        str: The label's text.
    """
    if label is None or label == '':
        return missing
    label = int(label)
    if classes is not None and 0 <= label < len(classes):
        return f'{classes[label]} ({label})'
    return str(label)
