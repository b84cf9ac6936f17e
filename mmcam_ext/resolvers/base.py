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

from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.capture import eval_mode
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
    'patch_embed_name',
]


@dataclass
class TracedModule:
    """What one module did during a traced forward pass."""

    name: str
    order: int  # completion order of its last call
    calls: int
    shape: Tuple[int, ...]  # shape of the tensor output, () if not a tensor


class ForwardTrace:
    """Record which modules run on an input, in completion order.

    Forward hooks fire when a module *finishes*, so a container completes
    after its children: the last 4-D module under a backbone is the output
    of its last stage.
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor) -> None:
        self.records: Dict[str, TracedModule] = {}
        handles = []
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
                    name, counter[0], calls, shape
                )

            return hook

        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        try:
            with eval_mode(model), torch.no_grad():
                self.output = classifier_logits(model, inputs)
        finally:
            for handle in handles:
                handle.remove()
        self.input_hw = spatial_size(inputs)
        self.batch = int(inputs.shape[0])

    def ran(self, name: str) -> bool:
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
        raise NotImplementedError

    def layout(
        self, model: nn.Module, layers: Sequence[str], trace: ForwardTrace
    ) -> TokenLayout:
        """Layout of user-chosen ``layers``; by default from their outputs."""
        return infer_layout(model, layers, trace)


def infer_layout(
    model: nn.Module, layers: Sequence[str], trace: ForwardTrace
) -> TokenLayout:
    """Guess a layout from the traced output rank of the first layer.

    4-D outputs are taken as NCHW, 3-D as tokens with the backbone's
    ``num_extra_tokens`` (0 when it has none).
    """
    rec = trace.records.get(layers[0])
    if rec is None:
        raise ValueError(
            f'Layer {layers[0]!r} does not run on this input, so '
            'it cannot be explained. Pick a layer on the path to '
            'the class scores.'
        )
    if len(rec.shape) == 3:
        _, root = feature_root(model)
        extra = num_extra_tokens(root)
        return TokenLayout('tokens', extra, patch_embed_name(model))
    return TokenLayout('nchw')


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
        model: A built classifier.
        inputs: A preprocessed batch (only its shape and one forward are
            used).
        target_layers: Module names chosen by the user; default: the
            resolver's choice.
        num_extra_tokens: Override of the token count to drop.
    """
    trace = ForwardTrace(model, inputs[:1])
    resolver = find_resolver(model)
    if target_layers:
        for name in target_layers:
            get_module(model, name)
        spec = TargetSpec(
            list(target_layers),
            resolver.layout(model, target_layers, trace),
            'chosen by the user',
        )
    else:
        spec = resolver.resolve(model, trace)
        print_log(
            f'[mmcam_ext] {type(resolver).__name__}: target layer(s) '
            f'{spec.layers} ({spec.reason})',
            logger='current',
        )
    for name in spec.layers:
        if not trace.ran(name):
            raise ValueError(
                f'Target layer {name!r} does not run on this input; layers '
                'that ran last: '
                + ', '.join(r.name for r in trace.ordered()[-8:])
            )
    if num_extra_tokens is not None and spec.layout.kind == 'tokens':
        spec.layout = replace(spec.layout, num_extra_tokens=num_extra_tokens)
    return spec
