"""Files a careless user hands to ``vis_cam.py`` and ``CAMInferencer``.

:func:`make_bad_inputs` writes, under one folder: a tiny ResNet config
(8 base channels, 10 classes, 64 px test pipeline) and variants of it
(no resize, no test pipeline, a syntax error, a self-supervised model), a
matching random checkpoint and wrong ones (another architecture, a text
file, a folder, a head whose class 0 weights are all negative, so that
class has no positive evidence anywhere), and image folders (good, mixed
with an unreadable file and hidden / non-image files, GIFs, only hidden
files, empty, a link loop, unicode names, a 20000x20000 PNG of 0.4 MB).
"""

import hashlib
import os
import os.path as osp
import struct
import zlib
from typing import Dict

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from tests.helpers.models import SMALL_PIPELINE, mmpretrain_config

__all__ = ['make_bad_inputs', 'tiny_config', 'tree_digest']

NUM_CLASSES = 10


def tiny_config(pipeline=SMALL_PIPELINE) -> Config:
    """resnet18's recipe with a tiny backbone (fast to build and run)."""
    cfg = Config.fromfile(mmpretrain_config('resnet/resnet18_8xb32_in1k.py'))
    cfg.model.backbone.update(stem_channels=8, base_channels=8)
    cfg.model.head.update(in_channels=64, num_classes=NUM_CLASSES)
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg


def _image(rng, h: int, w: int) -> np.ndarray:
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = (20, 200, 240)
    return img


def _configs(root: str) -> Dict[str, str]:
    paths = {}
    for name, cfg in [
        ('config', tiny_config()),
        ('config_no_resize', tiny_config([dict(type='PackInputs')])),
    ]:
        paths[name] = osp.join(root, f'{name}.py')
        cfg.dump(paths[name])
    no_test = tiny_config()
    no_test.pop('test_dataloader')
    paths['config_no_test'] = osp.join(root, 'config_no_test.py')
    no_test.dump(paths['config_no_test'])
    ssl = Config.fromfile(
        mmpretrain_config('simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py')
    )
    ssl.test_dataloader = dict(
        dataset=dict(type='ImageNet', pipeline=SMALL_PIPELINE)
    )
    paths['config_ssl'] = osp.join(root, 'config_ssl.py')
    ssl.dump(paths['config_ssl'])
    # as shipped: no test pipeline either (not a classifier comes first)
    paths['config_ssl_as_shipped'] = mmpretrain_config(
        'simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'
    )
    paths['config_syntax'] = osp.join(root, 'config_syntax.py')
    with open(paths['config_syntax'], 'w') as f:
        f.write('model = dict(type="ImageClassifier"\n')
    return paths


def _checkpoints(root: str) -> Dict[str, str]:
    from mmpretrain import get_model

    from tests.helpers.attention_models import tiny_classifier

    torch.manual_seed(0)
    model = get_model(tiny_config())
    model.init_weights()
    state = model.state_dict()
    paths = {k: osp.join(root, f'{k}.pth') for k in ('ckpt', 'blank_ckpt')}
    torch.save({'state_dict': state}, paths['ckpt'])
    blank = {k: v.clone() for k, v in state.items()}
    weight = torch.randn_like(blank['head.fc.weight']).abs() + 0.1
    weight[0] = -weight[0]  # class 0: every channel counts against it
    blank['head.fc.weight'], blank['head.fc.bias'] = weight, weight[:, 0] * 0
    torch.save({'state_dict': blank}, paths['blank_ckpt'])
    paths['other_ckpt'] = osp.join(root, 'vit.pth')
    torch.save(
        {'state_dict': tiny_classifier('vit').state_dict()},
        paths['other_ckpt'],
    )
    paths['text_ckpt'] = osp.join(root, 'notes.pth')
    with open(paths['text_ckpt'], 'w') as f:
        f.write('these are not weights\n')
    paths['dir_ckpt'] = osp.join(root, 'ckpt_dir')
    os.makedirs(paths['dir_ckpt'])
    return paths


def _folders(root: str) -> Dict[str, str]:
    rng = np.random.default_rng(0)
    paths = {}
    for name in (
        'images',
        'mixed',
        'gifs',
        'hidden_only',
        'empty',
        'two/a',
        'two/b',
        'naïve dir',
    ):
        paths[name] = osp.join(root, name)
        os.makedirs(paths[name])
    for i, (h, w) in enumerate([(70, 90), (96, 80), (80, 80)]):
        mmcv.imwrite(
            _image(rng, h, w), osp.join(paths['images'], f'img{i}.png')
        )
    mixed = paths['mixed']
    for name in (
        'good.png',
        'photo[1].png',
        'photo1.png',
        '._good.png',
        '.hidden.png',
    ):
        mmcv.imwrite(_image(rng, 64, 72), osp.join(mixed, name))
    with open(osp.join(mixed, 'bad.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 not a jpeg at all')
    with open(osp.join(mixed, 'notes.txt'), 'w') as f:
        f.write('not an image\n')
    os.makedirs(osp.join(mixed, 'folder.png'))  # a directory named .png
    for name in ('x.gif', 'y.gif'):
        Image.fromarray(_image(rng, 40, 50)).save(
            osp.join(paths['gifs'], name)
        )
    mmcv.imwrite(
        _image(rng, 40, 40), osp.join(paths['hidden_only'], '._a.png')
    )
    for sub in ('two/a', 'two/b'):
        mmcv.imwrite(_image(rng, 50, 60), osp.join(paths[sub], 'same.png'))
    paths['unicode_image'] = osp.join(paths['naïve dir'], 'chat noir é.png')
    mmcv.imwrite(_image(rng, 50, 60), paths['unicode_image'])
    paths['loop'] = osp.join(root, 'loop.png')
    os.symlink(paths['loop'], paths['loop'])
    paths['huge'] = osp.join(root, 'huge.png')
    _black_png(paths['huge'], 20000)
    paths['big'] = osp.join(root, 'big.png')
    mmcv.imwrite(_image(rng, 300, 400), paths['big'])
    return paths


def _black_png(path: str, side: int) -> None:
    """A grayscale PNG of ``side``² black pixels, written row by row (a
    decompression bomb: tiny file, huge image; never held in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack('>I', len(data))
            + body
            + struct.pack('>I', zlib.crc32(body))
        )

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then black pixels
    idat = b''.join(packer.compress(row) for _ in range(side))
    idat += packer.flush()
    header = struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header))
        f.write(chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def make_bad_inputs(root: str) -> Dict[str, str]:
    """Write every file under ``root``; return their paths by name.

    Args:
        root (str): An empty folder.

    Returns:
        dict: Name -> path (see the module docstring).
    """
    paths = dict(root=root)
    paths.update(_configs(root))
    paths.update(_checkpoints(root))
    paths.update(_folders(root))
    paths['image'] = osp.join(paths['images'], 'img0.png')
    return paths


def tree_digest(root: str) -> Dict[str, str]:
    """Relative path -> sha1 of every file under ``root`` (links skipped).

    Compared before and after a run: no user file changed or vanished.
    """
    digest = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            if osp.islink(path) or '__pycache__' in path:
                continue
            with open(path, 'rb') as f:
                digest[osp.relpath(path, root)] = hashlib.sha1(
                    f.read()
                ).hexdigest()
    return digest
