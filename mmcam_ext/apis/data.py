"""Image inputs for the inferencer and ``tools/vis_cam.py``.

Expands paths, directories and globs into a list of images, reads them with a
clear error naming the file, runs the config's test pipeline exactly as
MMPretrain's ``ImageClassificationInferencer`` does, and picks output names
that never overwrite a user's file.
"""

import glob
import io
import os
import os.path as osp
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from torch.utils.data import Dataset

from ..errors import (
    ConfigError,
    ImageLoadError,
    MMCamError,
    ResourceLimitError,
)
from .views import (
    FramedPipeline,
    ViewOptions,
    ViewsPipeline,
    scale_pipeline,
    whole_image_pipeline,
)

__all__ = [
    'ImageInput',
    'IMAGE_EXTENSIONS',
    'ImageLoadError',
    'InputLimits',
    'list_images',
    'load_image',
    'build_test_pipeline',
    'build_view_pipeline',
    'read_test_pipeline',
    'CAMImageDataset',
    'collate_or_skip',
    'unique_prefix',
]

ImageInput = Union[str, np.ndarray]
#: File endings listed from folders and globs: what OpenCV or Pillow decode
#: (a file given by name is always tried, whatever its ending).
IMAGE_EXTENSIONS = (
    # OpenCV (and Pillow)
    '.jpg',
    '.jpeg',
    '.jpe',
    '.jfif',
    '.png',
    '.apng',
    '.bmp',
    '.dib',
    '.gif',
    '.tif',
    '.tiff',
    '.webp',
    '.avif',
    '.jp2',
    '.pbm',
    '.pgm',
    '.ppm',
    '.pnm',
    '.pxm',
    '.pfm',
    '.sr',
    '.ras',
    '.exr',
    '.hdr',
    '.pic',
    # Pillow only (decoded by Pillow when OpenCV cannot)
    '.ico',
    '.cur',
    '.tga',
    '.qoi',
    '.pcx',
    '.sgi',
    '.rgb',
    '.icns',
    '.dds',
    '.blp',
    '.xbm',
    '.xpm',
)

#: Item keys of a views pipeline kept as one list entry per image.
UNCOLLATED = ('views', 'ori_img', 'frame')


@dataclass(frozen=True)
class InputLimits:
    """Size limits that keep one input from taking the machine's memory.

    The defaults fit a 24 GB machine: the worst case measured is a CIFAR
    ResNet-18 (no downsampling stem), about 1.2 GB of peak memory per
    megapixel of model input; ImageNet ResNet-50 and ViT-B/16 take about
    0.3 GB per megapixel.

    Args:
        max_image_pixels (int): Decoded pixels (height x width) of one
            image; checked from the file header before decoding where
            Pillow can read it. Defaults to 100,000,000.
        max_input_pixels (int): Pixels of the tensor the model receives,
            after the test pipeline: one image above it is refused, and a
            batch above it is explained in smaller chunks (same maps).
            Defaults to 8,000,000.
    """

    max_image_pixels: int = 100_000_000
    max_input_pixels: int = 8_000_000


def _name(item: ImageInput, index: Optional[int] = None) -> str:
    """How an input is called in messages."""
    if isinstance(item, str):
        return repr(item)
    return 'the input array' + ('' if index is None else f' #{index}')


def _is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _visible_images(paths: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Regular, non-hidden files split into image names and the rest.

    Hidden files (``.*``, which includes macOS ``._*`` resource forks),
    directories, broken links and link loops are left out.
    """
    images: List[str] = []
    other: List[str] = []
    for path in paths:
        if osp.basename(path).startswith('.') or not osp.isfile(path):
            continue
        (images if _is_image_name(path) else other).append(path)
    return images, other


def _list_dir(path: str) -> List[str]:
    try:
        names = sorted(os.listdir(path))
    except OSError as err:
        raise ImageLoadError(
            f'Cannot list directory {path!r}: {err.strerror}.'
        ) from None
    found, other = _visible_images([osp.join(path, n) for n in names])
    if not found:
        raise ImageLoadError(
            f'No image files in directory {path!r} (hidden files are '
            f'skipped; {len(other)} other file(s)); image types: '
            f'{", ".join(IMAGE_EXTENSIONS)}.'
        )
    if other:
        print_log(
            f'[mmcam_ext] {path}: {len(other)} file(s) not named like an '
            f'image left out ({", ".join(map(osp.basename, other[:3]))}'
            f'{", ..." if len(other) > 3 else ""}).',
            logger='current',
        )
    return found


def _expand_one(item: Any) -> Sequence[ImageInput]:
    """One input as images: an existing file is always taken literally."""
    if isinstance(item, np.ndarray):
        return [item]
    if not isinstance(item, (str, os.PathLike)):
        raise ImageLoadError(
            'An image input must be a path, a directory, a glob or a numpy '
            f'array, got {type(item).__name__}.',
            option='images',
        )
    path = os.fsdecode(os.fspath(item))
    if osp.isdir(path):
        return _list_dir(path)
    if osp.isfile(path):  # even 'photo[1].jpg': a name, not a pattern
        return [path]
    if glob.has_magic(path):
        found, _ = _visible_images(sorted(glob.glob(path, recursive=True)))
        if not found:
            raise ImageLoadError(
                f'The pattern {path!r} matches no image file (and no file '
                'has this name).'
            )
        return found
    if osp.lexists(path):
        raise ImageLoadError(
            f'Image {path!r} is a broken symbolic link (or a link loop).'
        )
    if re.match(r'^[a-z][a-z0-9+.-]*://', path, re.IGNORECASE):
        raise ImageLoadError(
            f'Image {path!r} is a URL: only local files, folders and globs '
            'are read; download it first.'
        )
    raise ImageLoadError(f'Image file {path!r} does not exist.')


def list_images(
    inputs: Union[ImageInput, Sequence[ImageInput]],
) -> List[ImageInput]:
    """Expand inputs into a flat list of image paths and arrays.

    An existing file is always taken as itself (``photo[1].jpg`` is a file,
    not a pattern); only a path that does not exist is expanded as a glob.
    Directories and globs list the non-hidden files named like an image
    (:data:`IMAGE_EXTENSIONS`), sorted.

    Args:
        inputs (str | np.ndarray | Sequence): A path, a directory, a glob
            pattern, a numpy array (``HxWx3`` BGR, as ``mmcv.imread``
            gives, like MMPretrain's inferencer), or a list of those.

    Returns:
        list: Paths (str) and arrays, in order.

    Raises:
        ImageLoadError: Naming the input that gives no image.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise ImageLoadError(
            'images must be a path, an array or a list of them, got '
            f'{type(inputs).__name__}.',
            option='images',
        )
    images: List[ImageInput] = []
    for item in inputs:
        images.extend(_expand_one(item))
    if not images:
        raise ImageLoadError('No input images given.', option='images')
    return images


def _too_big(
    what: str, height: int, width: int, limit: int, option: str
) -> ResourceLimitError:
    return ResourceLimitError(
        f'{what} is {width}x{height} = {height * width / 1e6:.1f} megapixels, '
        f'above the limit of {limit / 1e6:.1f} ({option}={limit}); raise '
        f'{option} if this machine has the memory for it.',
        option=option,
    )


@contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's own bomb check off: our limit, with our message, applies."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _header_size(path: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from the file header, without decoding."""
    from PIL import Image

    try:
        with _pillow_limit_off(), Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception:  # not a format Pillow knows: decode decides
        return None


def _pillow_decode(data: bytes) -> Optional[np.ndarray]:
    """BGR decode by Pillow, for formats OpenCV does not read."""
    from PIL import Image, ImageOps

    try:
        with _pillow_limit_off(), Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(ImageOps.exif_transpose(img).convert('RGB'))
    except Exception:
        return None
    return np.ascontiguousarray(rgb[..., ::-1])


def _decode_file(path: str, max_pixels: int) -> np.ndarray:
    size = _header_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise _too_big(
            f'Image {path!r}', *size, max_pixels, 'max_image_pixels'
        )
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageLoadError(
            f'Cannot read image {path!r}: {err.strerror}.'
        ) from None
    try:
        img = mmcv.imfrombytes(data, flag='color', backend='cv2')
    except Exception:  # cv2 asserts on empty buffers
        img = None
    if img is None:
        img = _pillow_decode(data)
    if img is None or img.size == 0:
        raise ImageLoadError(
            f'Cannot read image {path!r}: the file is not a decodable image '
            '(corrupt, empty or of an unsupported format).'
        )
    if img.shape[0] * img.shape[1] > max_pixels:
        raise _too_big(
            f'Image {path!r}',
            img.shape[0],
            img.shape[1],
            max_pixels,
            'max_image_pixels',
        )
    return img


def _array_shape_error(img: np.ndarray, what: str) -> Optional[str]:
    """Why an array is not an ``HxW`` / ``HxWx3`` image, or None."""
    shape = img.shape
    if img.ndim == 3 and shape[-1] == 4:
        return (
            f'{what} has shape {shape}: 4 channels (BGRA?); drop the alpha '
            'channel with img[..., :3].'
        )
    if img.ndim == 3 and shape[0] in (1, 3) and shape[-1] not in (1, 3):
        return (
            f'{what} has shape {shape}, channels first (CHW); give HxWx3 '
            '(img.transpose(1, 2, 0)).'
        )
    if img.ndim not in (2, 3) or (img.ndim == 3 and shape[-1] not in (1, 3)):
        return f'{what} has shape {shape}; expected HxW or HxWx3 (BGR).'
    if 0 in shape:
        return f'{what} has shape {shape}: it is empty.'
    return None


def _array_value_error(img: np.ndarray, what: str) -> Optional[str]:
    """Why an array's values are not 0-255 pixel values, or None."""
    kind = img.dtype.kind
    if kind not in 'uif':
        return (
            f'{what} has dtype {img.dtype}; give uint8 (or numbers in 0-255).'
        )
    if kind == 'u' and img.dtype.itemsize == 1:
        return None
    if kind == 'f' and not np.isfinite(img).all():
        return f'{what} holds NaN or Inf.'
    low, high = float(img.min()), float(img.max())
    if low < 0 or high > 255:
        return (
            f'{what} ({img.dtype}) has values in [{low:g}, {high:g}]; give '
            'pixel values in 0-255 (uint8).'
        )
    if kind == 'f' and high <= 1.0:
        return (
            f'{what} is {img.dtype} with all values in [0, 1]: pixel '
            'values are read as 0-255, so it would be explained as a black '
            'image; pass (img * 255).round().astype(np.uint8).'
        )
    return None


def _check_array(img: np.ndarray, max_pixels: int) -> np.ndarray:
    what = f'An input array ({img.dtype})'
    reason = _array_shape_error(img, what) or _array_value_error(img, what)
    if reason is not None:
        raise ImageLoadError(reason, option='images')
    if img.shape[0] * img.shape[1] > max_pixels:
        height, width = img.shape[:2]
        raise _too_big(
            'An input array', height, width, max_pixels, 'max_image_pixels'
        )
    if img.ndim == 2 or img.shape[-1] == 1:  # grayscale: as mmcv.imread
        img = np.repeat(img.reshape(*img.shape[:2], 1), 3, axis=-1)
    return img


def load_image(
    item: ImageInput, max_pixels: int = InputLimits.max_image_pixels
) -> np.ndarray:
    """Read an image as ``HxWx3`` **BGR** (MMPretrain's convention).

    Files are decoded by OpenCV, or by Pillow for formats OpenCV does not
    read; their size is checked from the header before decoding. Arrays
    are checked, never reinterpreted: ``HxWx3`` BGR or ``HxW`` grayscale
    (repeated to 3 channels, as ``mmcv.imread`` does), with pixel values
    in 0-255 (uint8, other integers or floats). Float arrays whose values
    all lie in [0, 1], ``HxWx4``, ``CHW`` and empty arrays are refused.

    Args:
        item (str | np.ndarray): A path or an array.
        max_pixels (int): Largest height x width. Defaults to
            ``InputLimits.max_image_pixels``.

    Returns:
        np.ndarray: The image.

    Raises:
        ImageLoadError: Naming the file, when it cannot be decoded, or why
            an array is not an image.
        ResourceLimitError: Larger than ``max_pixels``.
    """
    if isinstance(item, np.ndarray):
        return _check_array(item, max_pixels)
    return _decode_file(item, max_pixels)


def read_test_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline steps, without ``LoadImageFromFile``.

    Args:
        cfg (Config): The model's config.

    Returns:
        list[dict]: The transform configs.

    Raises:
        ConfigError: The config has no test pipeline.
    """
    from mmpretrain.datasets import remove_transform

    try:
        pipeline_cfg = cfg.test_dataloader.dataset.pipeline
    except (AttributeError, KeyError, TypeError):
        raise ConfigError(
            'The config has no test_dataloader.dataset.pipeline; '
            'CAM inputs are prepared with the test pipeline.'
        ) from None
    if not isinstance(pipeline_cfg, (list, tuple)):
        raise ConfigError(
            'test_dataloader.dataset.pipeline must be a list of transforms, '
            f'got {type(pipeline_cfg).__name__}.'
        )
    return list(remove_transform(pipeline_cfg, 'LoadImageFromFile'))


def _build_transforms(pipeline_cfg: Sequence[dict]) -> List[Callable]:
    from mmpretrain.registry import TRANSFORMS

    try:
        return [TRANSFORMS.build(t) for t in pipeline_cfg]
    except Exception as err:  # registry / constructor errors of a step
        raise ConfigError(
            f'Cannot build the test pipeline: {type(err).__name__}: '
            f'{" ".join(str(err).split())}'
        ) from err


def build_test_pipeline(cfg: Config) -> Callable[[dict], dict]:
    """The config's test pipeline without ``LoadImageFromFile``.

    Same as ``ImageClassificationInferencer._init_pipeline``: images are read
    by :func:`load_image`, so every later step is the config's own.

    Args:
        cfg (Config): The model's config.

    Returns:
        callable: The pipeline (``dict -> dict``).

    Raises:
        ConfigError: The config has no test pipeline, or a step of it
            cannot be built.
    """
    return Compose(_build_transforms(read_test_pipeline(cfg)))


def build_view_pipeline(
    cfg: Config, view: Optional[ViewOptions] = None
) -> Callable[[dict], dict]:
    """The test pipeline as ``view`` asks (whole image, scales, frames).

    Args:
        cfg (Config): The model's config.
        view (ViewOptions, optional): How photos are fed. Defaults to None
            (the config's pipeline as it is: :func:`build_test_pipeline`).

    Returns:
        callable: ``dict -> dict``; with a non-plain ``view`` a
        :class:`~mmcam_ext.apis.views.ViewsPipeline` whose output holds one
        ``views`` entry (with its ``frame``) per scale and ``ori_img``.

    Raises:
        ConfigError: The config has no usable test pipeline.
    """
    if view is None or view.plain:
        return build_test_pipeline(cfg)
    base = read_test_pipeline(cfg)
    if view.whole_image:
        base = whole_image_pipeline(base, view.input_size)
    return ViewsPipeline(
        [
            FramedPipeline(_build_transforms(scale_pipeline(base, s)))
            for s in view.scales
        ],
        view.tile_size,
        view.overlap,
    )


class CAMImageDataset(Dataset):
    """Images through the test pipeline, for a ``DataLoader``.

    Decoding and resizing then run in DataLoader workers, in parallel with
    the CAM computation. An input that cannot be used (unreadable, too big,
    refused by the pipeline) does not raise in the worker: its item is
    ``{'index', 'img_path', 'error'}`` with the typed error, so the main
    process reports the same one-line message with or without workers and
    can skip it (see :func:`collate_or_skip`).

    Args:
        images (Sequence): Paths and arrays from :func:`list_images`.
        pipeline (callable): From :func:`build_test_pipeline`.
        limits (InputLimits, optional): Size limits. Defaults to
            ``InputLimits()``.
    """

    def __init__(
        self,
        images: Sequence[ImageInput],
        pipeline: Callable[[dict], dict],
        limits: Optional[InputLimits] = None,
    ) -> None:
        self.images = list(images)
        self.pipeline = pipeline
        self.limits = limits or InputLimits()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict:
        item = self.images[index]
        path = item if isinstance(item, str) else None
        try:
            data = self._prepare(item, index)
        except MMCamError as err:
            return dict(index=index, img_path=path, error=err)
        data['index'] = index
        data['img_path'] = path
        return data

    def _prepare(self, item: ImageInput, index: int) -> Dict:
        """Decode, run the pipeline and check the model input's size."""
        img = load_image(item, self.limits.max_image_pixels)
        try:
            data = self.pipeline(
                dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            )
        except Exception as err:  # a transform refusing this image
            raise ImageLoadError(
                f'The test pipeline fails on {_name(item, index)}: '
                f'{type(err).__name__}: {" ".join(str(err).split())}'
            ) from err
        for view in data.get('views', [data]):
            inputs, tiles = view.get('inputs'), view.get('tiles')
            # A tiled view is explained tile by tile: each tile must fit.
            parts = (
                [inputs[..., y0:y1, x0:x1] for (y0, y1), (x0, x1) in tiles]
                if tiles
                else [inputs]
            )
            for part in parts:
                self._check_input(part, item, index)
        return data

    def _check_input(self, inputs: Any, item: ImageInput, index: int) -> None:
        """Refuse a model input that is not a tensor or is too big."""
        if not hasattr(inputs, 'shape'):
            raise ConfigError(
                'The test pipeline gives no image tensor (data["inputs"]); '
                'end it with PackInputs, as MMPretrain configs do.'
            )
        height, width = (int(v) for v in inputs.shape[-2:])
        if height * width > self.limits.max_input_pixels:
            raise _too_big(
                f'After the test pipeline, {_name(item, index)}',
                height,
                width,
                self.limits.max_input_pixels,
                'max_input_pixels',
            )


def collate_or_skip(items: List[Dict]) -> Dict[str, Any]:
    """Collate the usable items of a batch; keep the failed ones apart.

    Args:
        items (list[dict]): Items of :class:`CAMImageDataset`.

    Returns:
        dict: ``batch`` (``pseudo_collate`` of the usable items, or None;
        the per-view entries of :data:`UNCOLLATED` as plain lists) and
        ``failed`` (the items with an ``error``).
    """
    good = [d for d in items if 'error' not in d]
    failed = [d for d in items if 'error' in d]
    if not good:
        return dict(batch=None, failed=failed)
    batch = pseudo_collate(
        [{k: v for k, v in d.items() if k not in UNCOLLATED} for d in good]
    )
    for key in UNCOLLATED:
        if key in good[0]:
            batch[key] = [d[key] for d in good]
    return dict(batch=batch, failed=failed)


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
        out_dir (str): Output folder.
        stem (str): Preferred name, e.g. the input's file name without
            extension.
        suffixes (Sequence[str]): Endings of every file written with this
            prefix.
        taken (set[str], optional): Prefixes already used in this run;
            updated in place. Defaults to None (a new empty set).
        overwrite (bool): Replace existing files instead of adding a
            number. Defaults to False.

    Returns:
        str: The prefix, ``osp.join(out_dir, stem)`` or a numbered variant.
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
