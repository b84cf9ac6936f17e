"""The one mechanism that reads the facts table for MMPretrain backbones.

The table is :data:`mmcam_ext.utils.backbone_facts.FAMILY_FACTS`: one row per
backbone family (layer, layout, extra tokens, grid source, head, attention).
"""

from typing import Optional, Tuple

from torch import nn

from ..errors import LayoutError
from ..registry import TARGET_RESOLVERS
from ..structures import TargetSpec, TokenLayout
from ..utils.backbone_facts import (
    CLS_WHY,
    FAMILY_FACTS,
    BackboneFacts,
    find_facts,
    head_tokens,
)
from ..utils.model import expand_path, feature_root, num_extra_tokens
from .base import BaseResolver, ForwardTrace, spatial_layout

__all__ = [
    'FamilyResolver',
    'expand_path',
    'facts_layout',
    'first_path_that_ran',
    'default_paths',
]


def first_path_that_ran(
    model: nn.Module, prefix: str, paths: str, trace: ForwardTrace
) -> Optional[str]:
    """The first of ``'a|b|...'`` that exists and runs on this input.

    Args:
        model (nn.Module): The classifier.
        prefix (str): Name of the feature extractor.
        paths (str): Facts paths separated by ``|``.
        trace (ForwardTrace): The traced forward pass.

    Returns:
        str | None: The module name, or ``None`` when none ran.
    """
    for path in paths.split('|'):
        name = expand_path(model, prefix, path)
        if name is not None and trace.ran(name):
            return name
    return None


def default_paths(
    root: nn.Module, facts: BackboneFacts, extra: int
) -> Tuple[Optional[str], str]:
    """The facts paths of the default layer and the reason for them.

    The class-token layer (``cls_layer``) is used when the layer carries
    extra tokens and the head reads them.

    Args:
        root (nn.Module): The feature extractor.
        facts (BackboneFacts): Its row.
        extra (int): Extra tokens at the layer.

    Returns:
        tuple: ``(paths or None, why)``.
    """
    if facts.cls_layer and extra > 0 and head_tokens(root, facts) > 0:
        return facts.cls_layer, CLS_WHY
    return facts.layer, facts.why


@TARGET_RESOLVERS.register_module()
class FamilyResolver(BaseResolver):
    """Every MMPretrain backbone family with a row in ``FAMILY_FACTS``.

    The row names the layer (or asks for the last stage's spatial map, found
    in the trace) and the token layout; nothing here is family-specific.
    """

    # Qualified: timm has classes of the same names (ResNet, ConvNeXt...).
    backbones = tuple(f'mmpretrain.{name}' for name in FAMILY_FACTS)

    def resolve(self, model: nn.Module, trace: ForwardTrace) -> TargetSpec:
        """Choose the family's default layer for this input.

        Args:
            model (nn.Module): The classifier.
            trace (ForwardTrace): Its traced forward pass on the input.

        Returns:
            TargetSpec: The layer, its layout and the reason.
        """
        prefix, root = feature_root(model)
        facts = self._facts(root)
        layout = self._layout(model, prefix, root, facts)
        paths, why = default_paths(root, facts, layout.num_extra_tokens)
        if paths is None:
            name = trace.last_spatial(prefix, ndim=4)
        else:
            name = first_path_that_ran(model, prefix, paths, trace)
        if name is None:
            raise LayoutError(
                f'{type(root).__name__}: none of the layers the facts table '
                f'names ({paths or "a spatial map"}) runs on this '
                f'{trace.input_hw[0]}x{trace.input_hw[1]} input; pass '
                'target_layers (layer names: model.named_modules()).'
            )
        return TargetSpec([name], layout, why)

    def layout(
        self, model: nn.Module, layers, trace: ForwardTrace
    ) -> TokenLayout:
        """Layout of user-chosen layers: the family's kind where the rank fits.

        A 4-D output is NCHW or channels-last, whichever is a spatial map of
        this input (the family's kind when both are); one that is neither
        (a pooled 1x1 output) is refused, never guessed. A token layer keeps
        the family's grid source when it has as many tokens as the default
        layer (a plain ViT: one grid for all blocks); a layer of another
        stage of a hierarchical model has another grid, so its grid is
        solved from the input.

        Args:
            model (nn.Module): The classifier.
            layers (Sequence[str]): The user's layer names.
            trace (ForwardTrace): The traced forward pass.

        Returns:
            TokenLayout: The layout of ``layers[0]``.

        Raises:
            LayoutError: The output cannot be a map of this input.
        """
        prefix, root = feature_root(model)
        facts = self._facts(root)
        rec = trace.records.get(layers[0])
        shape = rec.shape if rec is not None else ()
        rank = len(shape)
        if rank != (3 if facts.kind == 'tokens' else 4):
            return super().layout(model, layers, trace)
        if rank == 4:  # e.g. ViT-SAM's NCHW neck next to its NHWC blocks
            return spatial_layout(
                layers[0], shape, trace.input_hw, facts.kind == 'nhwc'
            )
        layout = self._layout(model, prefix, root, facts)
        paths, _ = default_paths(root, facts, layout.num_extra_tokens)
        default = (
            first_path_that_ran(model, prefix, paths, trace) if paths else None
        )
        ref = trace.records.get(default) if default else None
        if ref is None or ref.shape[1:2] != shape[1:2]:
            layout = TokenLayout(layout.kind, layout.num_extra_tokens, None)
        return layout

    @staticmethod
    def _facts(root: nn.Module) -> BackboneFacts:
        facts = find_facts(root)
        if facts is None:  # a subclass registered under another name
            raise KeyError(f'No facts row for {type(root).__name__}.')
        return facts

    @staticmethod
    def _layout(
        model: nn.Module, prefix: str, root: nn.Module, facts: BackboneFacts
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

    Args:
        model (nn.Module): The classifier.
        prefix (str): Name of the feature extractor.
        root (nn.Module): The feature extractor.
        kind (str): ``'nchw'``, ``'nhwc'`` or ``'tokens'``.
        extra (int, optional): Extra tokens; ``None`` reads
            ``num_extra_tokens`` from the backbone.
        grid (str, optional): Path (relative to ``prefix``) of the module
            reporting the patch grid.

    Returns:
        TokenLayout: The layout.
    """
    if extra is None:
        extra = num_extra_tokens(root)
    source = expand_path(model, prefix, grid) if grid else None
    return TokenLayout(kind, extra, source)
