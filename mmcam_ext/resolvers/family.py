"""The one mechanism that reads the facts table (``facts.FAMILY_FACTS``)."""

from typing import Any, Optional

from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.model import feature_root, num_extra_tokens
from .base import BaseResolver, ForwardTrace, spatial_layout
from .facts import FAMILY_FACTS, TIMM_CNNS, Facts, find_facts

__all__ = [
    'FamilyResolver',
    'expand_path',
    'facts_layout',
    'first_path_that_ran',
]


def expand_path(model: nn.Module, prefix: str, path: str) -> Optional[str]:
    """Full module name for a facts path, or ``None`` if it does not exist.

    Negative integer parts index from the end of a container, so a fact
    holds for every depth of a family (``layers.-1`` is the last block of a
    12- or a 24-block ViT). A leading ``/`` starts at the classifier instead
    of the feature extractor.
    """
    if path.startswith('/'):
        prefix, path = '', path[1:]
    # Any: a part may name any attribute (checked below), and containers
    # are sized and indexed by duck typing.
    module: Any = model.get_submodule(prefix) if prefix else model
    names = [prefix] if prefix else []
    for part in path.split('.'):
        if part.lstrip('-').isdigit():
            index = int(part)
            if not hasattr(module, '__len__') or not (
                -len(module) <= index < len(module)
            ):
                return None
            part = str(index % len(module))
        module = (
            getattr(module, part, None)
            if not part.isdigit()
            else (module[int(part)])
        )
        if not isinstance(module, nn.Module):
            return None
        names.append(part)
    return '.'.join(names)


def first_path_that_ran(
    model: nn.Module, prefix: str, paths: str, trace: ForwardTrace
) -> Optional[str]:
    """The first of ``'a|b|...'`` that exists and runs on this input."""
    for path in paths.split('|'):
        name = expand_path(model, prefix, path)
        if name is not None and trace.ran(name):
            return name
    return None


@TARGET_RESOLVERS.register_module()
class FamilyResolver(BaseResolver):
    """Every backbone family with a row in ``FAMILY_FACTS``.

    The row names the layer (or asks for the last stage's spatial map, found
    in the trace) and the token layout; nothing here is family-specific.
    """

    # Qualified: timm has classes of the same names (ResNet, ConvNeXt...).
    backbones = tuple(f'mmpretrain.{name}' for name in FAMILY_FACTS) + tuple(
        f'timm.{name}' for name in TIMM_CNNS
    )

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        prefix, root = feature_root(model)
        facts = find_facts(root)
        if facts is None:  # a subclass registered under another name
            raise KeyError(f'No facts row for {type(root).__name__}.')
        if facts.layer is None:
            name = trace.last_spatial(prefix, ndim=4)
        else:
            name = first_path_that_ran(model, prefix, facts.layer, trace)
        if name is None:
            raise LayoutError(
                f'{type(root).__name__}: none of the layers the facts table '
                f'names ({facts.layer or "a spatial map"}) runs on this '
                f'{trace.input_hw[0]}x{trace.input_hw[1]} input; pass '
                'target_layers (layer names: model.named_modules()).'
            )
        return TargetSpec(
            [name], self._layout(model, prefix, root, facts), facts.why
        )

    def layout(
        self, model: nn.Module, layers, trace: ForwardTrace
    ) -> TokenLayout:
        """Layout of user-chosen layers: the family's kind where the rank fits.

        A 4-D output is NCHW or channels-last, whichever is a spatial map of
        this input (the family's kind when both are); one that is neither
        (a pooled 1x1 output) is refused, never guessed. A user token layer
        in another stage of a hierarchical model has another grid than the
        default layer, so its grid is solved from the input.

        Raises:
            LayoutError: The output cannot be a map of this input.
        """
        prefix, root = feature_root(model)
        facts = find_facts(root)
        rec = trace.records.get(layers[0])
        shape = rec.shape if rec is not None else ()
        rank = len(shape)
        if facts is None or rank != (3 if facts.kind == 'tokens' else 4):
            return super().layout(model, layers, trace)
        if rank == 4:  # e.g. ViT-SAM's NCHW neck next to its NHWC blocks
            return spatial_layout(
                layers[0], shape, trace.input_hw, facts.kind == 'nhwc'
            )
        layout = self._layout(model, prefix, root, facts)
        default = (
            first_path_that_ran(model, prefix, facts.layer, trace)
            if facts.layer
            else None
        )
        if list(layers) != [default]:
            layout = TokenLayout(layout.kind, layout.num_extra_tokens, None)
        return layout

    @staticmethod
    def _layout(
        model: nn.Module, prefix: str, root: nn.Module, facts: Facts
    ) -> TokenLayout:
        return facts_layout(
            model, prefix, root, facts.kind, facts.extra, facts.grid
        )


def facts_layout(
    model: nn.Module,
    prefix: str,
    root: nn.Module,
    kind: str,
    extra: Optional[int],
    grid: Optional[str],
) -> TokenLayout:
    """The layout a facts row describes, for this model.

    ``extra=None`` means "read ``num_extra_tokens`` from the backbone";
    ``grid`` is a path (relative to ``prefix``) to the module reporting the
    patch grid.
    """
    if extra is None:
        extra = num_extra_tokens(root)
    source = expand_path(model, prefix, grid) if grid else None
    return TokenLayout(kind, extra, source)
