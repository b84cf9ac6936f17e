"""Image inputs for the inferencer and ``tools/vis_cam.py``.

Expands paths, directories and globs into a list of images, reads them with a
clear error naming the file, runs the config's test pipeline exactly as
MMPretrain's ``ImageClassificationInferencer`` does, and picks output names
that never overwrite a user's file.
"""

import glob
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Set, Union

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose
from torch.utils.data import Dataset

__all__ = [
    'ImageInput',
    'IMAGE_EXTENSIONS',
    'ImageLoadError',
    'list_images',
    'load_image',
    'build_test_pipeline',
    'CAMImageDataset',
    'unique_prefix',
]

ImageInput = Union[str, np.ndarray]
IMAGE_EXTENSIONS = (
    '.jpg',
    '.jpeg',
    '.png',
    '.bmp',
    '.ppm',
    '.pgm',
    '.tif',
    '.tiff',
    '.webp',
)


class ImageLoadError(ValueError):
    """An input image is missing, unreadable or corrupt."""


def _is_image_file(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def _expand_one(item: ImageInput) -> Sequence[ImageInput]:
    if isinstance(item, np.ndarray):
        return [item]
    path = os.fspath(item)
    if osp.isdir(path):
        found = sorted(
            osp.join(path, f)
            for f in os.listdir(path)
            if _is_image_file(osp.join(path, f))
        )
        if not found:
            raise ImageLoadError(
                f'No image files ({", ".join(IMAGE_EXTENSIONS)})'
                f' in directory {path!r}.'
            )
        return found
    if glob.has_magic(path):
        found = sorted(
            p for p in glob.glob(path, recursive=True) if osp.isfile(p)
        )
        if not found:
            raise ImageLoadError(f'The pattern {path!r} matches no file.')
        return found
    if not osp.isfile(path):
        raise ImageLoadError(f'Image file {path!r} does not exist.')
    return [path]


def list_images(
    inputs: Union[ImageInput, Sequence[ImageInput]],
) -> List[ImageInput]:
    """Expand inputs into a flat list of image paths and arrays.

    Args:
        inputs: A path, a directory (its image files, sorted), a glob
            pattern, a numpy array (``HxWx3`` BGR, as ``mmcv.imread`` gives,
            like MMPretrain's inferencer), or a list of those.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    images: List[ImageInput] = []
    for item in inputs:
        images.extend(_expand_one(item))
    if not images:
        raise ImageLoadError('No input images given.')
    return images


def load_image(item: ImageInput) -> np.ndarray:
    """Read an image as ``HxWx3`` uint8 **BGR** (MMPretrain's convention).

    Raises:
        ImageLoadError: naming the file, when it cannot be decoded.
    """
    if isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise ImageLoadError(
                f'An input array has shape {item.shape}; '
                'expected HxW or HxWx3.'
            )
        return item
    try:
        img = mmcv.imread(item)
    except Exception as err:  # cv2/pillow errors are cryptic; name the file
        raise ImageLoadError(f'Cannot read image {item!r}: {err}') from err
    if img is None:
        raise ImageLoadError(
            f'Cannot read image {item!r}: the file is not a decodable image '
            '(corrupt, empty or of an unsupported format).'
        )
    return img


def build_test_pipeline(cfg: Config) -> Callable[[dict], dict]:
    """The config's test pipeline without ``LoadImageFromFile``.

    Same as ``ImageClassificationInferencer._init_pipeline``: images are read
    by :func:`load_image`, so every later step is the config's own.
    """
    from mmpretrain.datasets import remove_transform
    from mmpretrain.registry import TRANSFORMS

    try:
        pipeline_cfg = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        raise ValueError(
            'The config has no test_dataloader.dataset.pipeline; '
            'CAM inputs are prepared with the test pipeline.'
        ) from None
    pipeline_cfg = remove_transform(pipeline_cfg, 'LoadImageFromFile')
    return Compose([TRANSFORMS.build(t) for t in pipeline_cfg])


class CAMImageDataset(Dataset):
    """Images through the test pipeline, for a ``DataLoader``.

    Decoding and resizing then run in DataLoader workers, in parallel with
    the CAM computation.

    Args:
        images: Paths and arrays from :func:`list_images`.
        pipeline: From :func:`build_test_pipeline`.
    """

    def __init__(
        self, images: Sequence[ImageInput], pipeline: Callable[[dict], dict]
    ) -> None:
        self.images = list(images)
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict:
        item = self.images[index]
        img = load_image(item)
        data = self.pipeline(
            dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        )
        data['index'] = index
        data['img_path'] = item if isinstance(item, str) else None
        return data


def unique_prefix(
    out_dir: str,
    stem: str,
    suffixes: Sequence[str],
    taken: Optional[Set[str]] = None,
    overwrite: bool = False,
) -> str:
    """A path prefix in ``out_dir`` whose output files are all free.

    Outputs of one image share a prefix (``cat_cam.png``, ``cat_gradcam.npy``).
    If any ``prefix + suffix`` exists on disk (unless ``overwrite``) or was
    already planned in this run (``taken``: two inputs with the same file name
    from different folders), ``stem_1``, ``stem_2``... are tried, so a user's
    file is never overwritten silently. The result is added to ``taken``.

    Args:
        out_dir: Output folder.
        stem: Preferred name, e.g. the input's file name without extension.
        suffixes: Endings of every file written with this prefix.
        taken: Prefixes already used in this run; updated in place.
        overwrite: Replace existing files instead of adding a number.
    """
    taken = set() if taken is None else taken
    base = osp.join(out_dir, stem)
    prefix, n = base, 0

    def busy(pre: str) -> bool:
        return pre in taken or (
            not overwrite
            and any(osp.exists(pre + suffix) for suffix in suffixes)
        )

    while busy(prefix):
        n += 1
        prefix = f'{base}_{n}'
    taken.add(prefix)
    return prefix
