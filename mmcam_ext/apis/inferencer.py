"""``CAMInferencer``: CAMs for image files, MMPretrain-inferencer style.

Mirrors ``mmpretrain.apis.ImageClassificationInferencer``: the model comes
from a config, a model name or a built module; images go through the config's
*test* pipeline and the model's ``data_preprocessor`` exactly as MMPretrain
feeds them; batches are explained by :class:`~mmcam_ext.apis.CAMEngine`.
"""

import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint
from ..utils.image import to_rgb
from .cam_engine import CAMEngine, MethodLike, TargetsLike
from .data import CAMImageDataset, ImageInput, build_test_pipeline, list_images

__all__ = ['CAMInferencer', 'build_model', 'load_weights']

ModelLike = Union[str, os.PathLike, Config, nn.Module]


def load_weights(model: nn.Module, checkpoint: str) -> Dict[str, Any]:
    """Load a checkpoint into ``model``; return the checkpoint dict.

    Uses :func:`mmcam_ext.checkpoint.load_checkpoint`: ``weights_only``
    loading that accepts Runner checkpoints and refuses pickled code.
    """
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint!r} does not exist.')
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
    return ckpt if isinstance(ckpt, dict) else {}


def build_model(
    model: ModelLike,
    pretrained: Union[None, bool, str] = None,
    device: Union[str, torch.device] = 'cpu',
) -> nn.Module:
    """Build (or take) a classifier and load its weights, in eval mode.

    Args:
        model: A config path, a ``Config``, a name from
            ``mmpretrain.list_models()`` or a built module.
        pretrained: A checkpoint path; ``True`` for the model zoo weights of
            a model name (needs network); ``None``/``False`` for none.
        device: Where the model runs.
    """
    from mmpretrain import get_model

    if (
        isinstance(model, (str, os.PathLike))
        and str(model).endswith('.py')
        and not os.path.isfile(model)
    ):
        raise FileNotFoundError(f'Config file {str(model)!r} does not exist.')
    if not isinstance(model, nn.Module):
        model = get_model(model, pretrained=pretrained is True)
    if isinstance(pretrained, (str, os.PathLike)):
        meta = load_weights(model, str(pretrained)).get('meta', {}) or {}
        if 'dataset_meta' in meta:
            model._dataset_meta = meta['dataset_meta']
    return model.to(device).eval()


def _classes(model: nn.Module) -> Optional[Sequence[str]]:
    for attr in ('dataset_meta', '_dataset_meta'):
        meta = getattr(model, attr, None)
        if isinstance(meta, dict) and meta.get('classes'):
            return list(meta['classes'])
    return None


class CAMInferencer:
    """Explain images with CAMs, like MMPretrain's inferencers.

    Example:
        >>> inferencer = CAMInferencer('resnet18_8xb32_in1k', pretrained=ckpt)
        >>> res = inferencer('demo/', methods=('gradcam', 'gradcam++'))
        >>> res[0]['maps']['GradCAM'].shape   # (K, H, W)

    Args:
        model: Config path, ``Config``, model name or built classifier (a
            built one must carry its config as ``model._config``, as
            ``mmpretrain.get_model`` sets it).
        pretrained: Checkpoint path, or ``True`` for a model name's zoo
            weights. Defaults to None (random init).
        device: Device to run on. Defaults to ``'cpu'``.
        target_layers: Module names; default: the resolver's choice.
        num_extra_tokens: Override the extra token count of token layers.
    """

    def __init__(
        self,
        model: ModelLike,
        pretrained: Union[None, bool, str] = None,
        device: Union[str, torch.device] = 'cpu',
        target_layers: Optional[Sequence[str]] = None,
        num_extra_tokens: Optional[int] = None,
    ) -> None:
        self.model = build_model(model, pretrained, device)
        self.config = getattr(self.model, '_config', None)
        if self.config is None:
            raise ValueError(
                'The model has no config (model._config), so its test '
                'pipeline is unknown. Build it with mmpretrain.get_model(cfg) '
                'or pass the config instead of the module.'
            )
        self.pipeline = build_test_pipeline(self.config)
        self.classes = _classes(self.model)
        self.engine = CAMEngine(self.model, target_layers, num_extra_tokens)

    def __call__(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        methods: Sequence[MethodLike] = ('gradcam',),
        targets: TargetsLike = None,
        topk: int = 1,
        batch_size: int = 8,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        num_workers: int = 0,
    ) -> List[dict]:
        """Explain images; one result dict per image, in input order.

        Args:
            images: Paths, a directory, a glob, BGR numpy arrays, or a list.
            methods: CAM method names (case-insensitive, aliases allowed),
                config dicts or built methods.
            targets: ``None`` (top-``topk`` predictions), one class for all
                images, one per image, or ``(N, K)`` classes.
            topk: Predictions explained when ``targets`` is ``None``.
            batch_size: Images per forward/backward pass.
            aug_smooth: Test-time augmentation smoothing.
            eigen_smooth: First-principal-component smoothing.
            num_workers: DataLoader workers decoding images in parallel.

        Returns:
            Per image: ``img_path``, ``image`` (RGB uint8 after the test
            pipeline, what the maps align with), ``maps`` and ``raw_maps``
            (``{method: (K, H, W)}``), ``targets``, ``target_scores``,
            ``pred_label``, ``pred_score`` and, when the model knows its
            classes, ``pred_class`` and ``target_classes``.
        """
        return list(
            self.iter_results(
                images,
                methods,
                targets,
                topk,
                batch_size,
                aug_smooth,
                eigen_smooth,
                num_workers,
            )
        )

    def iter_results(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        methods: Sequence[MethodLike] = ('gradcam',),
        targets: TargetsLike = None,
        topk: int = 1,
        batch_size: int = 8,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        num_workers: int = 0,
    ) -> Iterator[dict]:
        """Like :meth:`__call__`, but yield results as batches finish."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        images = list_images(images)
        targets = self._check_targets(targets, len(images))
        loader = DataLoader(
            CAMImageDataset(images, self.pipeline),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=pseudo_collate,
        )
        options = dict(
            methods=tuple(methods),
            topk=topk,
            aug_smooth=aug_smooth,
            eigen_smooth=eigen_smooth,
        )
        for batch in loader:
            yield from self._explain_batch(batch, targets, options)

    # ------------------------------------------------------------------
    @staticmethod
    def _check_targets(targets: TargetsLike, num_images: int):
        if targets is None or np.ndim(targets) == 0:
            return targets
        arr = np.asarray(targets)
        if arr.shape[0] != num_images:
            raise ValueError(
                f'targets has {arr.shape[0]} entries for {num_images} images:'
                ' give one class for all images, one per image, or (N, K).'
            )
        return arr

    def _explain_batch(
        self, batch: dict, targets, options: dict
    ) -> Iterator[dict]:
        """Explain one collated batch; split it if image sizes differ."""
        shapes = {tuple(x.shape) for x in batch['inputs']}
        if len(shapes) > 1:
            print_log(
                f'[mmcam_ext] test pipeline gave images of sizes '
                f'{sorted(shapes)}; explaining them one at a time.',
                logger='current',
            )
            for i in range(len(batch['inputs'])):
                yield from self._explain_batch(
                    {k: v[i : i + 1] for k, v in batch.items()},
                    targets,
                    options,
                )
            return
        preprocessor = self.model.data_preprocessor
        assert isinstance(preprocessor, nn.Module)  # MMEngine's BaseModel
        data = preprocessor(
            dict(inputs=batch['inputs'], data_samples=batch['data_samples']),
            False,
        )
        idx = list(batch['index'])
        tgt = (
            targets
            if targets is None or np.ndim(targets) == 0
            else targets[idx]
        )
        res = self.engine.explain(data['inputs'], targets=tgt, **options)
        for i in range(len(idx)):
            yield self._result(batch, res, i)

    def _result(self, batch: dict, res, i: int) -> dict:
        out = dict(
            img_path=batch['img_path'][i],
            image=to_rgb(batch['inputs'][i].cpu().numpy(), 'bgr'),
            maps={m: v[i] for m, v in res.maps.items()},
            raw_maps={m: v[i] for m, v in res.raw_maps.items()},
            targets=res.targets[i],
            target_scores=res.target_scores[i],
            pred_label=int(res.pred_labels[i]),
            pred_score=float(res.pred_scores[i]),
        )
        if self.classes is not None:
            out['pred_class'] = self._name(out['pred_label'])
            out['target_classes'] = [self._name(t) for t in out['targets']]
        return out

    def _name(self, label: int) -> str:
        """Class name, or the index when the head has more classes."""
        assert self.classes is not None, 'only called when the head has names'
        label = int(label)
        return self.classes[label] if label < len(self.classes) else str(label)
