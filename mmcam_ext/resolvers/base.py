"""The resolver mechanism: which layer to explain, and how it is laid out.

A resolver is looked up by the class of the classifier's feature extractor
(``model.backbone`` or, for ``TimmClassifier``, ``model.model``), walking the
class's MRO, so a subclass of a known backbone is covered by its parent's
resolver. Resolvers see a :class:`ForwardTrace` of the model on the actual
input, so they choose among layers that really run on it, in execution order.
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.capture import HookSet, eval_mode
from ..utils.maps import spatial_size
from ..utils.model import (
    classifier_logits,
    feature_root,
    get_module,
    num_extra_tokens,
)

__all__ = [
    'BaseResolver',
    'ForwardTrace',
    'TracedModule',
    'find_resolver',
    'resolve_targets',
    'plausible_map',
    'infer_layout',
    'spatial_layout',
    'patch_embed_name',
]


@dataclass
class TracedModule:
    """What one module did during a traced forward pass."""

    name: str
    order: int  # completion order of its last call
    calls: int
    shape: Tuple[int, ...]  # shape of the tensor output, () if not a tensor
    out_type: str = 'Tensor'  # type name of the output


class ForwardTrace:
    """Record which modules run on an input, in completion order.

    Forward hooks fire when a module *finishes*, so a container completes
    after its children: the last 4-D module under a backbone is the output
    of its last stage.
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor) -> None:
        self.records: Dict[str, TracedModule] = {}
        counter = [0]

        def make_hook(name: str):

            def hook(module, args, output):
                counter[0] += 1
                shape = (
                    tuple(output.shape)
                    if isinstance(output, torch.Tensor)
                    else ()
                )
                rec = self.records.get(name)
                calls = rec.calls + 1 if rec else 1
                self.records[name] = TracedModule(
                    name, counter[0], calls, shape, type(output).__name__
                )

            return hook

        with HookSet() as hooks:
            for name, module in model.named_modules():
                if name:
                    hooks.forward(module, make_hook(name))
            with eval_mode(model), torch.no_grad():
                self.output = classifier_logits(model, inputs)
        self.input_hw = spatial_size(inputs)
        self.batch = int(inputs.shape[0])

    def ran(self, name: str) -> bool:
        """Whether the module called ``name`` ran in the traced forward."""
        return name in self.records

    def ordered(self, prefix: str = '') -> List[TracedModule]:
        """Modules under ``prefix`` that ran, in completion order."""
        recs = [
            r
            for r in self.records.values()
            if not prefix
            or r.name == prefix
            or r.name.startswith(prefix + '.')
        ]
        return sorted(recs, key=lambda r: r.order)

    def last_spatial(self, prefix: str, ndim: int = 4) -> Optional[str]:
        """Last module under ``prefix`` that ran once with a plausible map.

        Modules called more than once (shared activations) are skipped: their
        last call is not the one a reader means. So are outputs that cannot
        be this input's feature map (see :func:`plausible_map`): a batch
        other than the input's (window attention: batch = windows), 1x1 maps
        after global pooling, or a channels-last map.
        """
        best = None
        for rec in self.ordered(prefix):
            if rec.calls != 1 or len(rec.shape) != ndim or rec.name == prefix:
                continue
            if rec.shape[0] != self.batch:
                continue
            if ndim == 4 and not plausible_map(rec.shape, self.input_hw):
                continue
            best = rec.name
        return best


def plausible_map(shape: Sequence[int], input_hw: Tuple[int, int]) -> bool:
    """Whether a ``(B, C, h, w)`` output can be a feature map of the input.

    It must be more than 1x1, no larger than the input, and downsampled by
    about the same stride in both directions (so its aspect follows the
    input's). This rejects channels-last ``(B, h, w, C)`` maps and
    attention matrices ``(B, heads, N, N)`` whose shape happens to be 4-D.
    """
    h, w = int(shape[-2]), int(shape[-1])
    height, width = input_hw
    if h * w <= 1 or h > height or w > width:
        return False
    stride_h, stride_w = height / h, width / w
    return max(stride_h, stride_w) / min(stride_h, stride_w) < 1.5


class BaseResolver:
    """Choose target layers and their layout for one backbone family.

    Subclasses list the backbone class names they handle in ``backbones`` and
    override :meth:`resolve`. Register them with
    ``@TARGET_RESOLVERS.register_module()``; nothing else is needed.
    """

    backbones: Tuple[str, ...] = ()

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        """Choose the default target layers of ``model`` for this input.

        Called by :func:`resolve_targets` only when the user gave no
        ``target_layers`` (user-chosen layers go through :meth:`layout`).
        The choice must rest on what really ran: ``trace`` holds the
        modules that ran on one sample of the actual input, in completion
        order, with their output shapes. The model must not be changed.

        Args:
            model (nn.Module): The classifier (the engine passes it
                unwrapped from DDP); its feature extractor is
                ``model.backbone`` or, for ``TimmClassifier``,
                ``model.model`` (see
                :func:`~mmcam_ext.utils.model.feature_root`).
            trace (ForwardTrace): A no-grad forward of ``model`` on the
                first sample of the input (``trace.batch`` is 1,
                ``trace.input_hw`` the input's ``(H, W)``).

        Returns:
            TargetSpec: ``layers``, one or more module names as in
            ``model.named_modules()`` that ran in ``trace`` (their maps are
            averaged, so they share one layout); ``layout``, the
            :class:`TokenLayout` that folds their outputs into
            ``(B, C, h, w)``; ``reason``, one line saying why, logged for
            the user. :func:`resolve_targets` then refuses a layer that did
            not run and applies the user's ``num_extra_tokens`` to a
            ``'tokens'`` layout.

        Raises:
            LayoutError: No layer of this model gives a map of this input
                (the message tells the user to pass ``target_layers``).
            NotImplementedError: Always, on this base class.
        """
        raise NotImplementedError

    def layout(
        self, model: nn.Module, layers: Sequence[str], trace: ForwardTrace
    ) -> TokenLayout:
        """Layout of user-chosen ``layers``; by default from their outputs."""
        return infer_layout(model, layers, trace)


def infer_layout(
    model: nn.Module, layers: Sequence[str], trace: ForwardTrace
) -> TokenLayout:
    """Layout of the first layer from its traced output.

    3-D outputs are tokens with the backbone's ``num_extra_tokens`` (0 when
    it has none); 4-D outputs are NCHW or NHWC, whichever is a spatial map
    of this input (see :func:`spatial_layout`); anything else is refused.

    Raises:
        LayoutError: The output cannot be a map of this input.
    """
    rec = check_traced_layer(layers[0], trace)
    if len(rec.shape) == 3:
        _, root = feature_root(model)
        extra = num_extra_tokens(root)
        return TokenLayout('tokens', extra, patch_embed_name(model))
    if len(rec.shape) == 4:
        return spatial_layout(layers[0], rec.shape, trace.input_hw)
    raise LayoutError(
        f'Target layer {layers[0]!r} outputs shape {rec.shape}: neither a '
        '(B, C, H, W) map nor (B, L, C) tokens, so it has no spatial map '
        '(e.g. pooled features or class scores). Choose a layer before the '
        'global pooling (layer names: model.named_modules()).'
    )


def check_traced_layer(name: str, trace: ForwardTrace) -> TracedModule:
    """The trace record of a user's target layer, if it can give a map.

    Args:
        name (str): The layer's module name.
        trace (ForwardTrace): A traced forward of this input.

    Returns:
        TracedModule: Its record.

    Raises:
        LayoutError: The layer did not run, returns no tensor, or returns a
            batch other than the input's (window attention).
    """
    rec = trace.records.get(name)
    if rec is None:
        raise LayoutError(
            f'Target layer {name!r} does not run on this input, so it '
            'cannot be explained; layers that ran last: '
            + ', '.join(r.name for r in trace.ordered()[-8:])
        )
    if not rec.shape:
        raise LayoutError(
            f'Target layer {name!r} returns a {rec.out_type}, not a tensor, '
            'so it has no map. Choose one of its sub-layers (layer names: '
            'model.named_modules()).'
        )
    if rec.shape[0] != trace.batch:
        raise LayoutError(
            f'Target layer {name!r} outputs a batch of {rec.shape[0]} for '
            f'{trace.batch} image(s) (shape {rec.shape}; e.g. window '
            'attention: batch = windows), so its maps cannot be assigned to '
            'images. Choose a layer that keeps one sample per image.'
        )
    return rec


def spatial_layout(
    name: str,
    shape: Sequence[int],
    input_hw: Tuple[int, int],
    prefer_nhwc: bool = False,
) -> TokenLayout:
    """NCHW or NHWC for a 4-D output, whichever is a map of this input.

    Never guessed: a shape that neither reading makes a spatial map of this
    input (see :func:`plausible_map`) is refused, e.g. a ``(B, 512, 1, 1)``
    pooled output, which read channels-last would become 512 rows of
    stripes.

    Args:
        name (str): The layer's name, for the error.
        shape (Sequence[int]): Its 4-D output shape.
        input_hw (tuple[int, int]): The network input's ``(H, W)``.
        prefer_nhwc (bool): The reading to take when both fit (the
            family's own kind). Defaults to False (NCHW).

    Returns:
        TokenLayout: ``'nchw'`` or ``'nhwc'``.

    Raises:
        LayoutError: Naming both readings and the input size.
    """
    b, d1, d2, d3 = (int(v) for v in shape)
    nchw = plausible_map((b, d1, d2, d3), input_hw)
    nhwc = plausible_map((b, d3, d1, d2), input_hw)
    if nchw and nhwc:
        return TokenLayout('nhwc' if prefer_nhwc else 'nchw')
    if nchw or nhwc:
        return TokenLayout('nchw' if nchw else 'nhwc')
    raise LayoutError(
        f'Target layer {name!r} outputs shape {tuple(shape)}: as (B, C, H, W) '
        f'that is a {d2}x{d3} map, as (B, H, W, C) a {d1}x{d2} map, and '
        f'neither is a spatial map of this {input_hw[0]}x{input_hw[1]} input '
        '(more than 1x1, no larger than the input, about the same stride '
        'in both directions). Choose an earlier layer, before any global '
        'pooling (layer names: model.named_modules()).'
    )


def patch_embed_name(model: nn.Module) -> Optional[str]:
    """Name of the backbone's patch embedding, if it has a standard one."""
    prefix, root = feature_root(model)
    if isinstance(getattr(root, 'patch_embed', None), nn.Module):
        return f'{prefix}.patch_embed' if prefix else 'patch_embed'
    return None


def find_resolver(model: nn.Module) -> BaseResolver:
    """The registered resolver for this model's backbone class (MRO walk).

    A resolver's ``backbones`` may name a class (``'ResNet'``), a class
    qualified by its top-level package (``'timm.VisionTransformer'``), which
    is tried first: timm and MMPretrain share class names, or every class
    of a package (``'timm.*'``), tried last.
    """
    _, root = feature_root(model)
    # Latest registration first, so a user's resolver overrides ours.
    resolvers = list(TARGET_RESOLVERS.module_dict.values())[::-1]
    for cls in type(root).__mro__:
        package = cls.__module__.split('.')[0]
        for key in (f'{package}.{cls.__name__}', cls.__name__, f'{package}.*'):
            for resolver_cls in resolvers:
                if key in getattr(resolver_cls, 'backbones', ()):
                    return resolver_cls()
    return TARGET_RESOLVERS.get('GenericResolver')()


def resolve_targets(
    model: nn.Module,
    inputs: torch.Tensor,
    target_layers: Optional[Sequence[str]] = None,
    num_extra_tokens: Optional[int] = None,
) -> TargetSpec:
    """Decide the target layers and layout for ``model`` on ``inputs``.

    Args:
        model (nn.Module): A built classifier.
        inputs (torch.Tensor): A preprocessed batch (only its shape and one
            forward are used).
        target_layers (Sequence[str], optional): Module names chosen by the
            user. Defaults to None (the resolver's choice).
        num_extra_tokens (int, optional): Override of the token count to
            drop. Defaults to None.

    Returns:
        TargetSpec: The target layers, their layout and the reason.

    Raises:
        LayerNotFoundError: A user-chosen layer does not exist.
        LayoutError: A layer does not run on this input or cannot give a
            map of it.
    """
    trace = ForwardTrace(model, inputs[:1])
    resolver = find_resolver(model)
    if target_layers:
        spec = user_spec(model, resolver, list(target_layers), trace)
    else:
        spec = resolver.resolve(model, trace)
        print_log(
            f'[mmcam_ext] {type(resolver).__name__}: target layer(s) '
            f'{spec.layers} ({spec.reason})',
            logger='current',
        )
    for name in spec.layers:
        if not trace.ran(name):
            raise LayoutError(
                f'Target layer {name!r} does not run on this input; layers '
                'that ran last: '
                + ', '.join(r.name for r in trace.ordered()[-8:])
            )
    if num_extra_tokens is not None and spec.layout.kind == 'tokens':
        spec.layout = replace(spec.layout, num_extra_tokens=num_extra_tokens)
    return spec


def user_spec(
    model: nn.Module,
    resolver: BaseResolver,
    layers: List[str],
    trace: ForwardTrace,
) -> TargetSpec:
    """The spec of user-chosen layers, each checked against this input.

    Every layer must exist, run, return a tensor of the input's batch and
    be a spatial map or token sequence of this input; all must share one
    layout kind (their maps are averaged).

    Args:
        model (nn.Module): The classifier.
        resolver (BaseResolver): The model's resolver (it knows the
            family's layout).
        layers (list[str]): The user's module names.
        trace (ForwardTrace): A traced forward of this input.

    Returns:
        TargetSpec: The layers and their layout.

    Raises:
        LayerNotFoundError: A name does not exist (close matches listed).
        LayoutError: A layer cannot give a map of this input.
    """
    for name in layers:
        get_module(model, name)
        check_traced_layer(name, trace)
    layout = resolver.layout(model, layers, trace)
    for name in layers:
        own = resolver.layout(model, [name], trace)
        if own.kind != layout.kind:
            raise LayoutError(
                f'Target layers {layers} mix layouts: {layers[0]!r} is '
                f'{layout.kind} {trace.records[layers[0]].shape}, {name!r} '
                f'is {own.kind} {trace.records[name].shape}. Their maps are '
                'averaged, so choose layers of one kind.'
            )
    return TargetSpec(layers, layout, 'chosen by the user')
