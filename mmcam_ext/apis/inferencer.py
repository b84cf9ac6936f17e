"""``CAMInferencer``: CAMs for image files, MMPretrain-inferencer style.

Mirrors ``mmpretrain.apis.ImageClassificationInferencer``: the model comes
from a config, a model name or a built module; images go through the config's
*test* pipeline and the model's ``data_preprocessor`` exactly as MMPretrain
feeds them; batches are explained by :class:`~mmcam_ext.apis.CAMEngine`.
"""

import copy
import os
import os.path as osp
import warnings
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError, ConfigError, ConfigKeyWarning, ModelError
from ..utils.image import to_rgb
from .cam_engine import CAMEngine, TargetsLike
from .checks import (
    check_device,
    check_int,
    check_methods,
    check_targets,
    class_lookup,
)
from .data import (
    CAMImageDataset,
    ImageInput,
    InputLimits,
    build_test_pipeline,
    build_view_pipeline,
    collate_or_skip,
    list_images,
)
from .multi_view import explain_views
from .views import ViewOptions, check_any_input_size

__all__ = [
    'CAMInferencer',
    'build_model',
    'load_config',
    'load_weights',
    'new_config_keys',
]

ModelLike = Union[str, os.PathLike, Config, nn.Module]
CONFIG_SUFFIXES = ('.py', '.json', '.yml', '.yaml')


def _one_line(err: BaseException) -> str:
    return f'{type(err).__name__}: {" ".join(str(err).split())}'[:400]


def new_config_keys(cfg: Config, options: Mapping[str, Any]) -> List[str]:
    """Keys of ``options`` (dotted, as ``cfg_options``) the config lacks.

    Merging such a key adds it, which is often a typo
    (``model.head.num_clases``).

    Args:
        cfg (Config): The config before merging.
        options (Mapping): ``{'model.head.num_classes': 10, ...}``.

    Returns:
        list[str]: The keys that would be new.
    """
    new = []
    root = cfg.to_dict() if isinstance(cfg, Config) else cfg
    for key in options:
        node: Any = root
        for part in str(key).split('.'):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif (
                isinstance(node, (list, tuple))
                and part.isdigit()
                and int(part) < len(node)
            ):
                node = node[int(part)]
            else:
                new.append(str(key))
                break
    return new


def load_config(
    config: Union[str, os.PathLike, Config],
    cfg_options: Optional[Mapping[str, Any]] = None,
) -> Config:
    """Read a config file (or copy a ``Config``) and merge overrides.

    Args:
        config (str | PathLike | Config): The config.
        cfg_options (Mapping, optional): Dotted overrides, as MMEngine's
            ``--cfg-options``. Keys the config does not have are added, with
            a :class:`ConfigKeyWarning` (a typo?). Defaults to None.

    Returns:
        Config: The merged config.

    Raises:
        ConfigError: Missing, unreadable or not a config; overrides that do
            not apply.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        cfg = _read_config(os.fspath(config))
    if cfg_options:
        new = new_config_keys(cfg, cfg_options)
        if new:
            warnings.warn(
                f'cfg_options add key(s) the config does not have: '
                f'{", ".join(new)} (a typo?).',
                ConfigKeyWarning,
                stacklevel=2,
            )
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except Exception as err:
            raise ConfigError(
                f'cfg_options {dict(cfg_options)} do not apply to the config: '
                f'{_one_line(err)}',
                option='cfg_options',
            ) from err
    return cfg


def _read_config(path: str) -> Config:
    if osp.isdir(path):
        raise ConfigError(f'Config {path!r} is a directory, not a file.')
    if not osp.isfile(path):
        raise ConfigError(f'Config file {path!r} does not exist.')
    if not path.lower().endswith(CONFIG_SUFFIXES):
        raise ConfigError(
            f'{path!r} is not a config file ({", ".join(CONFIG_SUFFIXES)}); '
            'is it the checkpoint?'
        )
    try:
        return Config.fromfile(path)
    except Exception as err:  # syntax errors, missing _base_ files...
        raise ConfigError(
            f'Cannot read config {path!r}: {_one_line(err)}'
        ) from err


def load_weights(
    model: nn.Module, checkpoint: str, strict: bool = True
) -> Dict[str, Any]:
    """Load a checkpoint into ``model``; return the checkpoint dict.

    Uses :func:`mmcam_ext.checkpoint.load_checkpoint`: ``weights_only``
    loading that accepts Runner checkpoints and refuses pickled code.

    Args:
        model (nn.Module): The model.
        checkpoint (str): The file.
        strict (bool): Refuse a file whose keys or shapes differ from the
            model's; ``False`` loads the matching part with a warning.
            Defaults to True.

    Returns:
        dict: The checkpoint.

    Raises:
        CheckpointError: Missing, not a checkpoint, or (strict) not this
            model's weights.
    """
    path = os.fspath(checkpoint)
    if not osp.exists(path):
        raise CheckpointError(f'Checkpoint {path!r} does not exist.')
    ckpt = load_checkpoint(model, path, map_location='cpu', strict=strict)
    return ckpt if isinstance(ckpt, dict) else {}


def _check_model_arg(model: Any) -> None:
    if not isinstance(model, (str, os.PathLike, Config, nn.Module)):
        raise ModelError(
            'model must be a config path, a Config, a model name '
            '(mmpretrain.list_models()) or a built nn.Module, got '
            f'{type(model).__name__}.',
            option='model',
        )


def _is_config_path(model: Any) -> bool:
    if not isinstance(model, (str, os.PathLike)):
        return False
    path = os.fspath(model)
    return osp.exists(path) or path.lower().endswith(CONFIG_SUFFIXES)


def _build(model: Union[str, Config], pretrained: Any) -> nn.Module:
    """``mmpretrain.get_model`` with errors that name the config."""
    from mmpretrain import get_model

    what = 'the config' if isinstance(model, Config) else repr(model)
    try:
        return get_model(model, pretrained=pretrained is True)
    except Exception as err:  # registry, constructor or zoo-name errors
        hint = (
            ''
            if isinstance(model, Config)
            else ' (neither a config file '
            'nor a model name of mmpretrain.list_models())'
        )
        raise ConfigError(
            f'Cannot build the model from {what}{hint}: {_one_line(err)}'
        ) from err


def check_classifier(model: nn.Module) -> None:
    """Refuse an MMPretrain model that has no class scores to explain.

    Args:
        model (nn.Module): A built model.

    Raises:
        ModelError: A self-supervised, retrieval or multi-modal model.
    """
    _check_classifier_class(type(model))


def check_classifier_config(cfg: Config) -> None:
    """Refuse a config whose ``model.type`` is not a classifier, before
    anything else is read from it (a self-supervised config has no test
    pipeline either, but *not a classifier* is what helps).

    Args:
        cfg (Config): A model config.

    Raises:
        ModelError: ``model.type`` names a registered MMPretrain model
            that is not a classifier.
    """
    from mmpretrain.registry import MODELS

    model_cfg = cfg.get('model')
    kind = model_cfg.get('type') if isinstance(model_cfg, dict) else None
    if isinstance(kind, str):
        try:
            cls = MODELS.get(kind)
        except Exception:  # an unknown scope: building will say so
            cls = None
        if isinstance(cls, type):
            _check_classifier_class(cls)


def _check_classifier_class(cls: type) -> None:
    from mmengine.model import BaseModel
    from mmpretrain.models.classifiers import BaseClassifier

    if issubclass(cls, BaseModel) and not issubclass(cls, BaseClassifier):
        names = [c.__name__ for c in cls.__mro__]
        kind = (
            'a self-supervised pre-training model'
            if 'BaseSelfSupervisor' in names
            else 'an image retriever'
            if 'BaseRetriever' in names
            else f'a {names[1]}'
        )
        raise ModelError(
            f'{cls.__name__} is not a classifier ({kind}): CAMs '
            'explain class scores. Use a classification config '
            "(model.type='ImageClassifier' or 'TimmClassifier'), e.g. the "
            "model's fine-tuning or linear-probe config.",
            option='model',
        )


def build_model(
    model: ModelLike,
    pretrained: Union[None, bool, str] = None,
    device: Union[str, torch.device] = 'cpu',
    strict: bool = True,
) -> nn.Module:
    """Build (or take) a classifier and load its weights, in eval mode.

    Args:
        model (str | Config | nn.Module): A config path, a ``Config``, a
            name from ``mmpretrain.list_models()`` or a built module.
        pretrained (str | bool, optional): A checkpoint path; ``True`` for
            the model zoo weights of a model name (needs network);
            ``None``/``False`` for none. Defaults to None.
        device (str | torch.device): Where the model runs. Defaults to
            ``'cpu'``.
        strict (bool): Refuse a checkpoint whose keys or shapes differ from
            the model's (see :func:`load_weights`). Defaults to True.

    Returns:
        nn.Module: The model, in eval mode on ``device``.

    Raises:
        MMCamError: ``ConfigError``, ``ModelError``, ``CheckpointError`` or
            ``InputError`` (device), naming what was wrong.
    """
    _check_model_arg(model)
    dev = check_device(device)
    if not isinstance(model, nn.Module):
        if _is_config_path(model):
            model = load_config(model)
        model = _build(model, pretrained)
    check_classifier(model)
    if isinstance(pretrained, (str, os.PathLike)):
        ckpt = load_weights(model, os.fspath(pretrained), strict)
        meta = ckpt.get('meta', {}) or {}
        if 'dataset_meta' in meta:
            model._dataset_meta = meta['dataset_meta']
    return model.to(dev).eval()


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
        model (str | Config | nn.Module): Config path, ``Config``, model
            name or built classifier (a built one must carry its config as
            ``model._config``, as ``mmpretrain.get_model`` sets it).
        pretrained (str | bool, optional): Checkpoint path, or ``True`` for
            a model name's zoo weights. Defaults to None (random init).
        device (str | torch.device): Device to run on. Defaults to
            ``'cpu'``.
        target_layers (Sequence[str], optional): Module names. Defaults to
            None (the resolver's choice).
        num_extra_tokens (int, optional): Override the extra token count of
            token layers. Defaults to None.
        strict (bool): Refuse a checkpoint that is not this model's weights
            (missing, unexpected or reshaped keys); ``False`` loads the
            matching part with a warning. Defaults to True.
        limits (InputLimits, optional): Size limits of decoded images and
            of the model input. Defaults to ``InputLimits()``.
        view (ViewOptions, optional): Feed the whole photo instead of the
            config's crop, explain it at several scales, draw on the photo
            (see :class:`~mmcam_ext.apis.views.ViewOptions` and
            ``docs/whole_image.md``). Defaults to None (the config's test
            pipeline, maps on the model input).

    Raises:
        MMCamError: A typed error naming the config, checkpoint, device or
            model that is wrong (see :mod:`mmcam_ext.errors`).
    """

    def __init__(
        self,
        model: ModelLike,
        pretrained: Union[None, bool, str] = None,
        device: Union[str, torch.device] = 'cpu',
        target_layers: Optional[Sequence[str]] = None,
        num_extra_tokens: Optional[int] = None,
        strict: bool = True,
        limits: Optional[InputLimits] = None,
        view: Optional[ViewOptions] = None,
    ) -> None:
        self.limits = limits or InputLimits()
        self.view = view or ViewOptions()
        check_int(self.limits.max_image_pixels, 'max_image_pixels', 1)
        check_int(self.limits.max_input_pixels, 'max_input_pixels', 1)
        _check_model_arg(model)
        if _is_config_path(model):
            model = load_config(model)
        if isinstance(model, Config):
            check_classifier_config(model)  # the most useful error first
            build_test_pipeline(model)  # fails before the model is built
        self.model = build_model(model, pretrained, device, strict)
        self.config = getattr(self.model, '_config', None)
        if self.config is None:
            raise ModelError(
                'The model has no config (model._config), so its test '
                'pipeline is unknown. Build it with mmpretrain.get_model(cfg) '
                'or pass the config instead of the module.',
                option='model',
            )
        if self.view.whole_image or self.view.multi_scale:
            check_any_input_size(self.model)
        self.pipeline = build_view_pipeline(self.config, self.view)
        self.classes = _classes(self.model)
        self.engine = CAMEngine(self.model, target_layers, num_extra_tokens)

    def __call__(
        self, images: Union[ImageInput, Sequence[ImageInput]], *args, **kwargs
    ) -> List[dict]:
        """Explain images; the results of :meth:`iter_results` as a list.

        Args:
            images (str | Path | np.ndarray | Sequence): What to explain.
            *args: The other arguments of :meth:`iter_results`, in order.
            **kwargs: The other arguments of :meth:`iter_results`.

        Returns:
            list[dict]: One result dict per image, in input order.
        """
        return list(self.iter_results(images, *args, **kwargs))

    def iter_results(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        methods: Any = ('gradcam',),
        targets: TargetsLike = None,
        topk: int = 1,
        batch_size: int = 8,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        num_workers: int = 0,
        skip_bad_images: bool = False,
        descriptors: bool = False,
    ) -> Iterator[dict]:
        """Explain images, yielding one result dict per image as its batch
        finishes, in input order.

        Args:
            images (str | Path | np.ndarray | Sequence): Paths, a directory,
                a glob, BGR numpy arrays, or a list of them.
            methods (str | dict | BaseCAMMethod | Sequence): One CAM method
                (a case-insensitive name or alias, a config dict such as
                ``dict(type='rollout', head_fusion='max')``, or a built
                method) or a list of them.
                Defaults to ``('gradcam',)``.
            targets (int | str | Sequence | torch.Tensor, optional):
                ``None`` (top-``topk`` predictions), one class for all
                images, one per image, or ``(N, K)`` classes. A class may
                be given by its name (``'tench'``) where the model has
                class names. Defaults to None.
            topk (int): Predictions explained when ``targets`` is ``None``.
                Defaults to 1.
            batch_size (int): Images per forward/backward pass. Defaults
                to 8.
            aug_smooth (bool): Test-time augmentation smoothing (flips x
                brightness, 6 passes). Defaults to False.
            eigen_smooth (bool): First-principal-component smoothing.
                Defaults to False.
            num_workers (int): DataLoader workers decoding images in
                parallel. Defaults to 0.
            skip_bad_images (bool): Give an input that cannot be used
                (unreadable, too large, refused by the pipeline) as
                ``{'img_path', 'index', 'error'}`` instead of raising its
                error. Defaults
                to False.
            descriptors (bool): Also compute each map's evidence
                descriptor (``descriptors`` in the results; the config's
                test pipeline only, not with a ``view``). Defaults to
                False.

        Yields:
            dict: Per image: ``img_path``, ``image`` (RGB uint8, what the
            maps align with: the model input, or the photo when the maps
            are drawn on it), ``view_box`` (the part of the photo the model
            saw, ``(x0, y0, x1, y1)``, when maps are on the photo and the
            model saw only part of it; else None), ``frames`` (with a
            ``view``: one :class:`~mmcam_ext.apis.views.InputFrame` per
            scale, where its input lies in the photo), ``maps`` and
            ``raw_maps`` (``{method: (K, H, W)}``), ``blank`` (``{method:
            (K,) bool}``, True where that map is zero everywhere),
            ``descriptors`` (``{method: (K, D)}``, empty unless asked for),
            ``target_layers``, ``targets``, ``target_scores``,
            ``pred_label``, ``pred_score`` and, when the model knows its
            classes, ``pred_class`` and ``target_classes``.

        Raises:
            MMCamError: A typed error for a wrong argument, an unusable
                image (unless ``skip_bad_images``), a layer that gives no
                map or NaN/Inf.
        """
        batch_size = check_int(batch_size, 'batch_size', 1)
        num_workers = check_int(num_workers, 'num_workers', 0)
        check_int(topk, 'topk', 1)
        built = check_methods(methods)
        images = list_images(images)
        targets = self._names_to_indices(targets)
        checked = self._check_targets(targets, len(images))
        loader = DataLoader(
            CAMImageDataset(images, self.pipeline, self.limits),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate_or_skip,
        )
        options = dict(
            methods=built,
            topk=topk,
            aug_smooth=aug_smooth,
            eigen_smooth=eigen_smooth,
            descriptors=descriptors and self.view.plain,
        )
        for loaded in loader:
            yield from self._explain_loaded(
                loaded, checked, options, skip_bad_images
            )

    # ------------------------------------------------------------------
    def _names_to_indices(self, targets: Any) -> Any:
        """``targets`` with every class name (at any depth) as its index."""
        lookup = class_lookup(self.classes)

        def swap(value: Any) -> Any:
            if isinstance(value, str):
                return lookup(value)
            if isinstance(value, (list, tuple)):
                return [swap(v) for v in value]
            return value

        return swap(targets)

    @staticmethod
    def _check_targets(
        targets: TargetsLike, num_images: int
    ) -> Optional[torch.Tensor]:
        """``(N, K)`` targets for all images (range checked per batch)."""
        if targets is None:
            return None
        # The class range is checked per batch, against the logits.
        return check_targets(targets, num_images, None, 'images')

    def _explain_loaded(
        self, loaded: dict, targets, options: dict, skip: bool
    ) -> Iterator[dict]:
        """Results of one loaded batch, failed inputs included, in order."""
        failed = {d['index']: d for d in loaded['failed']}
        if failed and not skip:
            raise failed[min(failed)]['error']
        out: Dict[int, dict] = {
            i: dict(img_path=d['img_path'], index=i, error=d['error'])
            for i, d in failed.items()
        }
        batch = loaded['batch']
        if batch is not None:
            results = self._explain_batch(batch, targets, options)
            out.update(zip(list(batch['index']), results))
        for index in sorted(out):
            yield out[index]

    def _explain_batch(
        self, batch: dict, targets, options: dict
    ) -> Iterator[dict]:
        """Explain one collated batch; split it by image size and limit."""
        if not self.view.plain:
            yield from self._explain_views(batch, targets, options)
            return
        shapes = {tuple(x.shape) for x in batch['inputs']}
        if len(shapes) > 1:
            print_log(
                f'[mmcam_ext] test pipeline gave images of sizes '
                f'{sorted(shapes)}; explaining them one at a time.',
                logger='current',
            )
        pixels = int(np.prod(next(iter(shapes))[-2:]))
        chunk = max(1, self.limits.max_input_pixels // pixels)
        size = 1 if len(shapes) > 1 else chunk
        num = len(batch['inputs'])
        for start in range(0, num, size):
            part = {k: v[start : start + size] for k, v in batch.items()}
            yield from self._explain_chunk(part, targets, options)

    def _explain_views(
        self, batch: dict, targets, options: dict
    ) -> Iterator[dict]:
        """Explain one batch through its views (whole image, scales)."""
        preprocessor = self.model.data_preprocessor
        assert isinstance(preprocessor, nn.Module)  # MMEngine's BaseModel
        rows = explain_views(
            self.engine,
            preprocessor,
            batch,
            targets,
            {k: v for k, v in options.items() if k != 'descriptors'},
            self.view,
            self.limits.max_input_pixels,
        )
        for row in rows:
            yield self._with_names(row)

    def _explain_chunk(
        self, batch: dict, targets, options: dict
    ) -> Iterator[dict]:
        """Explain images of one size, few enough for the input limit."""
        preprocessor = self.model.data_preprocessor
        assert isinstance(preprocessor, nn.Module)  # MMEngine's BaseModel
        data = preprocessor(
            dict(inputs=batch['inputs'], data_samples=batch['data_samples']),
            False,
        )
        idx = list(batch['index'])
        tgt = None if targets is None else targets[idx]
        res = self.engine.explain(data['inputs'], targets=tgt, **options)
        for i in range(len(idx)):
            yield self._result(batch, res, i)

    def _result(self, batch: dict, res, i: int) -> dict:
        """Image ``i`` of a batch result, sliced by
        :meth:`~mmcam_ext.structures.CAMResult.sample`."""
        image = to_rgb(batch['inputs'][i].cpu().numpy(), 'bgr')
        kinds = [f'top{k + 1}' for k in range(res.targets.shape[1])]
        sample = res.sample(i, batch['index'][i], image, kinds)
        out = dict(
            img_path=batch['img_path'][i],
            image=image,
            maps=sample.maps,
            raw_maps=sample.raw_maps,
            blank=sample.blank,
            descriptors=sample.descriptors,
            target_layers=list(res.target_layers),
            targets=res.targets[i],
            target_scores=res.target_scores[i],
            pred_label=int(res.pred_labels[i]),
            pred_score=float(res.pred_scores[i]),
            view_box=None,
        )
        return self._with_names(out)

    def _with_names(self, out: dict) -> dict:
        """``out`` with ``pred_class`` and ``target_classes`` where the
        model has class names."""
        if self.classes is not None:
            out['pred_class'] = self._name(out['pred_label'])
            out['target_classes'] = [self._name(t) for t in out['targets']]
        return out

    def _name(self, label: int) -> str:
        """Class name, or the index when the head has more classes."""
        assert self.classes is not None, 'only called when the head has names'
        label = int(label)
        return self.classes[label] if label < len(self.classes) else str(label)
