"""One table of facts per backbone family, read by resolvers and methods.

A row (:class:`BackboneFacts`) says everything mmcam_ext needs to know about
one backbone class of MMPretrain 1.2.0: which layer Grad-CAM explains and how
its output is laid out (``resolvers/``), which tokens the head reads, and how
the family's attention runs and where it is recorded (the attention methods
in ``methods/``). Subclasses are covered by their parent's row: one MRO walk
(:func:`find_facts`) finds it. timm models are not listed: their row is built
from the model's own metadata (``feature_info``, ``num_prefix_tokens``,
``global_pool``, see :func:`timm_facts`). Adding a family is adding one row.

Paths are relative to the feature extractor (``model.backbone``, or
``model.model`` for ``TimmClassifier``):

* Negative integers index from the end of a container (``'layers.-1.ln1'``
  is the last block's ``ln1``); ``'a|b'`` tries ``a`` first, then ``b``; a
  leading ``/`` makes the path relative to the whole classifier (a neck).
* ``layer=None`` means *the last spatial map that runs under the backbone*
  (``ForwardTrace.last_spatial``): the output of a CNN's last stage, whatever
  it is called.
* Attention module patterns use ``*`` for one path part
  (``'stages.*.blocks.*.attn'``); only matches whose class has a recorder
  (``methods/attention_adapters.py``) are used.
"""

from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple

from torch import nn

from .model import nearest_listed

__all__ = [
    'AttentionFacts',
    'BackboneFacts',
    'FAMILY_FACTS',
    'LAST_STAGE',
    'CLS_WHY',
    'find_facts',
    'timm_facts',
    'is_timm',
    'head_tokens',
    'NO_ATTENTION',
    'GRADIENT_METHODS_HINT',
]

LAST_STAGE = 'output of the last stage: the deepest map with a spatial layout'
CLS_WHY = (
    "input of the last attention: the last block's patch outputs never "
    'reach the class token'
)
GRADIENT_METHODS_HINT = (
    'Use a gradient method on a layer instead, e.g. gradcam (or gradcam++, '
    'hirescam, layercam).'
)


@dataclass(frozen=True, kw_only=True)
class AttentionFacts:
    """How a family's token attention runs and where it is recorded
    (fields by name only).

    Args:
        kind (str): What the attention is, in words (``'global'``,
            ``'shifted windows'``, ``'spatially reduced keys'``, ...);
            ``'none'`` for families without token attention.
        modules (tuple[str]): Patterns of the modules whose attention is
            recorded, in any order (the forward pass gives the order).
            ``('**',)`` records every module of a known attention class
            (timm models). Defaults to ``()``.
        unsupported (str, optional): Why the attention methods cannot follow
            this family; ``None`` when they can. Defaults to None.
        skipped (str): Token mixing outside attention that the methods do
            not see (convolutional position encodings, channel attention),
            stated in the docs. Defaults to ``''``.
    """

    kind: str
    modules: Tuple[str, ...] = ()
    unsupported: Optional[str] = None
    skipped: str = ''


NO_ATTENTION = AttentionFacts(
    kind='none', unsupported='it has no token-to-token attention'
)


@dataclass(frozen=True, kw_only=True)
class BackboneFacts:
    """Everything mmcam_ext knows about one backbone family (fields by
    name only, so a row reads as what it says).

    Args:
        layer (str, optional): Grad-CAM's default layer when the head pools
            the patch tokens (or the family has no extra tokens); ``None``:
            the last spatial map. Defaults to None.
        kind (str): Layout of that layer: ``'nchw'``, ``'nhwc'``,
            ``'tokens'`` or ``'auto'`` (read from the traced output: timm
            models). Defaults to ``'nchw'``.
        extra (int, optional): Extra (cls/distillation) tokens before the
            patch tokens at that layer; ``None`` reads the backbone's
            ``num_extra_tokens``. Defaults to 0.
        grid (str, optional): Module whose output carries this input's patch
            grid; ``None`` solves the grid from the input size. Defaults to
            None.
        why (str): One line, logged with the choice. Defaults to
            :data:`LAST_STAGE`.
        cls_layer (str, optional): The layer when the head reads extra
            tokens (the input of the last attention: after it, patch tokens
            never reach the class token, so later layers get exactly zero
            gradient). Defaults to None (always ``layer``).
        head (str): What the head reads: ``'pool'`` (the mean of the patch
            tokens), ``'out_type'`` (the backbone's ``out_type`` decides:
            ``'cls_token'``/``'raw'`` read the extra tokens) or
            ``'global_pool'`` (timm: ``'token'`` reads the class token).
            Defaults to ``'pool'``.
        attention (AttentionFacts): The family's attention. Defaults to
            :data:`NO_ATTENTION`.
    """

    layer: Optional[str] = None
    kind: str = 'nchw'
    extra: Optional[int] = 0
    grid: Optional[str] = None
    why: str = LAST_STAGE
    cls_layer: Optional[str] = None
    head: str = 'pool'
    attention: AttentionFacts = NO_ATTENTION


_CNN = BackboneFacts()
_POOLED_NORM = BackboneFacts(
    why=LAST_STAGE + '; its final norm runs after pooling'
)
_SWIN_ATTN = AttentionFacts(
    kind='shifted windows, patch merging between stages',
    modules=('stages.*.blocks.*.attn',),
)
# Tokens of a hierarchical transformer's last stage after its norm (its
# name follows the stage index: ``norm3`` for four stages; otherwise the
# last block); the grid comes from the stage, which returns ``(x, hw)``.
_HIER = BackboneFacts(
    layer='norm3|norm2|norm1|stages.-1.blocks.-1',
    kind='tokens',
    extra=0,
    grid='stages.-1',
    why='last-stage tokens after their norm (no class token)',
    attention=_SWIN_ATTN,
)
_TWINS = BackboneFacts(
    layer='norm_after_stage3|stages.-1.-1',
    kind='tokens',
    extra=0,
    grid='patch_embeds.-1',
    why='last-stage tokens after their norm',
)
_TWINS_SKIPPED = (
    'the convolutional position encoding after the first block of each '
    'stage, and the strided patch embeddings between stages (treated as '
    'merging: each coarse token covers its stride x stride children)'
)
# Plain ViTs: the layer depends on what the head reads (``out_type``).
_VIT = BackboneFacts(
    layer='ln1|layers.-1',
    kind='tokens',
    extra=None,
    grid='patch_embed',
    why='final patch tokens: the head pools them',
    cls_layer='layers.-1.ln1',
    head='out_type',
    attention=AttentionFacts(kind='global', modules=('layers.*.attn',)),
)

FAMILY_FACTS: Dict[str, BackboneFacts] = {
    # --- CNNs: the last stage output, found in the trace --------------------
    **dict.fromkeys(
        [
            'ResNet',
            'ResNetV1c',
            'ResNetV1d',
            'ResNeXt',
            'SEResNet',
            'SEResNeXt',
            'Res2Net',
            'ResNeSt',
            'ResNet_CIFAR',
            'RegNet',
            'VGG',
            'DenseNet',
            'MobileNetV2',
            'MobileNetV3',
            'MobileOne',
            'EfficientNet',
            'EfficientNetV2',
            'ShuffleNetV1',
            'ShuffleNetV2',
            'RepVGG',
            'CSPDarkNet',
            'CSPResNet',
            'CSPResNeXt',
            'CSPNet',
            'InceptionV3',
            'VAN',
            'ConvMixer',
            'RepLKNet',
            'RIFormer',
            'PoolFormer',
            'Vig',
            'PyramidVig',
            'RepMLPNet',
            'LeNet5',
            'AlexNet',
        ],
        _CNN,
    ),
    'MobileViT': replace(
        _CNN,
        attention=AttentionFacts(
            kind='attention inside unfolded patches between conv stages',
            unsupported='its attention runs only between convolutional '
            'stages, which mix tokens in ways attention does not describe',
        ),
    ),
    # Norm after global pooling (1x1 map): the last stage output instead.
    'ConvNeXt': _POOLED_NORM,
    'HorNet': _POOLED_NORM,
    'EdgeNeXt': replace(
        _POOLED_NORM,
        attention=AttentionFacts(
            kind='channel (transposed) attention',
            unsupported='its attention is over channels (transposed '
            'attention), not between tokens',
        ),
    ),
    # Conformer: the conv branch's last map (the transformer branch only
    # reaches the head through its class token).
    'Conformer': BackboneFacts(
        why='last map of the conv branch (conv head input)',
        attention=AttentionFacts(
            kind='global (transformer branch)',
            unsupported='its transformer branch is fused with a CNN branch '
            'that attention does not describe, and both heads are summed',
        ),
    ),
    # HRNet's four branches meet only in the classification neck.
    'HRNet': BackboneFacts(
        layer='/neck.0.final_layer|/neck.final_layer',
        why='HRFuseScales output: all four branches fused',
    ),
    # --- Hierarchical transformers: tokens, no class token -------------------
    'SwinTransformer': _HIER,
    'SwinTransformerV2': _HIER,
    'DaViT': replace(
        _HIER,
        attention=AttentionFacts(
            kind='windows, alternating with channel attention',
            modules=('stages.*.blocks.*.spatial_block.attn',),
            skipped='the channel-attention blocks (they mix channels, not '
            'tokens: identity in the token flow) and the convolutional '
            'position encodings',
        ),
    ),
    'PCPVT': replace(
        _TWINS,
        attention=AttentionFacts(
            kind='spatially reduced keys (global sub-sampled attention)',
            modules=('stages.*.*.attn',),
            skipped=_TWINS_SKIPPED,
        ),
    ),
    'SVT': replace(
        _TWINS,
        attention=AttentionFacts(
            kind='locally-grouped windows alternating with sub-sampled keys',
            modules=('stages.*.*.attn',),
            skipped=_TWINS_SKIPPED,
        ),
    ),
    'MViT': BackboneFacts(
        layer='norm3|blocks.-1',
        kind='tokens',
        extra=None,
        grid='blocks.-1',
        why='last-block tokens after the final norm',
        attention=AttentionFacts(
            kind='pooling attention',
            unsupported='its queries, keys and values are pooled by learned '
            'overlapping convolutions and its residual by max pooling, so '
            'attention weights do not map onto input tokens',
        ),
    ),
    'MixMIMTransformer': BackboneFacts(
        layer='norm',
        kind='tokens',
        extra=0,
        grid=None,
        why='last-stage tokens after the final norm',
        attention=AttentionFacts(
            kind='windows, patch merging between stages',
            modules=('layers.*.blocks.*',),
        ),
    ),
    'TinyViT': BackboneFacts(
        layer='stages.-1',
        kind='tokens',
        extra=0,
        grid=None,
        why='last-stage tokens; its final norm runs after pooling',
        attention=AttentionFacts(
            kind='windows, patch merging between stages',
            modules=('stages.*.blocks.*',),
            skipped='its first (convolutional) stage and the depth-wise '
            'convolution in every block',
        ),
    ),
    'LeViT': BackboneFacts(
        layer='stages.-1',
        kind='tokens',
        extra=0,
        grid=None,
        why='last-stage tokens (no class token, no final norm)',
        attention=AttentionFacts(
            kind='global, with query-subsampling attention between stages',
            modules=('stages.*.*', 'stages.*.*.block'),
            skipped='its convolutional stem (the grid starts at stride 16)',
        ),
    ),
    'EfficientFormer': BackboneFacts(
        layer='norm3|network.-1',
        kind='tokens',
        extra=0,
        grid=None,
        why='last (attention) stage tokens after the norm',
        attention=AttentionFacts(
            kind='global, last stage only',
            modules=('network.*.*.token_mixer',),
            skipped='the pooling token mixers of the first three stages '
            '(only the last stage has attention)',
        ),
    ),
    'HiViT': BackboneFacts(
        layer='fc_norm|norm|blocks.-1',
        kind='tokens',
        extra=0,
        grid='patch_embed',
        why='main-stage tokens after the final norm',
        attention=AttentionFacts(
            kind='global, main stage only',
            modules=('blocks.*.attn',),
            skipped='its first two stages (per-token MLPs and patch '
            'merging, no token mixing)',
        ),
    ),
    # --- Plain transformers whose head sees the patch tokens -----------------
    'MlpMixer': BackboneFacts(
        layer='ln1',
        kind='tokens',
        extra=0,
        grid='patch_embed',
        why='patch tokens after the final norm (no class token)',
    ),
    'RevVisionTransformer': BackboneFacts(
        layer='fusion_layer',
        kind='tokens',
        extra=None,
        grid='patch_embed',
        why='fused two-stream tokens before average pooling',
        attention=AttentionFacts(kind='global', modules=('layers.*.attn',)),
    ),
    # XCiT's class token joins only in the class-attention layers, which the
    # patch tokens of the last XCA block feed: no extra token there.
    'XCiT': BackboneFacts(
        layer='xca_layers.-1',
        kind='tokens',
        extra=0,
        grid='patch_embed',
        why='last XCA block: its patch tokens feed the class attention',
        head='out_type',
        attention=AttentionFacts(
            kind='class attention (cls query over all tokens) after '
            'cross-covariance blocks',
            modules=('ca_layers.*.attn',),
            skipped='the cross-covariance blocks (attention over channels, '
            'identity in the token flow) and their convolutional local '
            'patch interaction',
        ),
    ),
    # ViT-SAM keeps channels-last maps (B, H, W, C) through its blocks.
    'ViTSAM': BackboneFacts(
        layer='layers.-1',
        kind='nhwc',
        extra=0,
        grid=None,
        why='last block output, channels-last (B, H, W, C)',
        attention=AttentionFacts(
            kind='windows, with a few global blocks', modules=('layers.*',)
        ),
    ),
    # --- Plain ViTs: the head reads the class token (or pools patches) ------
    'VisionTransformer': _VIT,  # also DeiT, MoCoV3ViT, MAE fine-tuning ViTs
    # DeiT3's block applies the same ``ln1`` before attention and before the
    # MLP (it runs twice; a hook sees the MLP call), so take the input of the
    # last block, i.e. the output of the one before it.
    'DeiT3': replace(_VIT, cls_layer='layers.-2'),
    'BEiTViT': _VIT,  # also EVA (BEiT-style ViT)
    'ViTEVA02': replace(_VIT, cls_layer='layers.-1.norm1'),
    # The encoder only: the T2T module's own attention runs on the unfolded
    # soft-split tokens, before the cls token and patch grid exist.
    'T2T_ViT': replace(
        _VIT,
        layer='norm|encoder.-1',
        cls_layer='encoder.-1.ln1',
        grid='tokens_to_token',
        attention=AttentionFacts(
            kind='global (encoder)',
            modules=('encoder.*.attn',),
            skipped='the tokens-to-token module (attention over unfolded '
            'soft splits, before the patch grid exists)',
        ),
    ),
    # TNT has a class token but no ``num_extra_tokens`` attribute.
    'TNT': replace(
        _VIT,
        layer='norm',
        cls_layer='layers.-1.outer_block.norm_attn',
        grid=None,
        extra=1,
        attention=AttentionFacts(
            kind='global between patches, nested pixel attention inside them',
            unsupported='its patch attention runs through torch.nn.'
            'MultiheadAttention inside mmcv wrappers together with a nested '
            'pixel-level attention; not implemented',
        ),
    ),
}

# Fields of a timm row that do not come from the model's metadata.
_TIMM_ATTENTION = AttentionFacts(
    kind='timm attention modules', modules=('**',)
)


def is_timm(backbone: nn.Module) -> bool:
    """Whether the feature extractor is a timm model.

    Args:
        backbone (nn.Module): The feature extractor.

    Returns:
        bool: ``True`` for classes defined in the ``timm`` package.
    """
    return type(backbone).__module__.split('.')[0] == 'timm'


def _feature_modules(backbone: nn.Module) -> Tuple[str, ...]:
    info: Any = getattr(backbone, 'feature_info', None)
    if not info:
        return ()
    return tuple(
        str(f['module']) for f in info if isinstance(f, dict) and 'module' in f
    )


def timm_facts(backbone: nn.Module) -> Optional[BackboneFacts]:
    """The facts row of a timm model, read from its own metadata.

    * ``num_prefix_tokens`` (ViT, DeiT, register tokens): token layout with
      that many extra tokens; the head reads the class token when
      ``global_pool == 'token'``, so the layer is the input of the last
      attention (``<blocks>.-1.norm1``), else the final norm.
    * Otherwise the last entry of ``feature_info`` (``layer4``, ``layers.3``,
      ``network.4``) is the layer; the resolver moves on to a later module
      with the same spatial size (EfficientNet's ``bn2``, Swin's ``norm``)
      and reads the layout (NCHW or NHWC) from the traced output.

    Args:
        backbone (nn.Module): A timm model.

    Returns:
        BackboneFacts | None: The row, or ``None`` without metadata.
    """
    modules = _feature_modules(backbone)
    prefix = getattr(backbone, 'num_prefix_tokens', None)
    if isinstance(prefix, int) and modules:
        blocks = modules[-1].rsplit('.', 1)[0]
        return BackboneFacts(
            layer='norm|' + f'{blocks}.-1',
            kind='tokens',
            extra=prefix,
            grid=None,
            why='final patch tokens: pooled',
            cls_layer=f'{blocks}.-1.norm1',
            head='global_pool',
            attention=_TIMM_ATTENTION,
        )
    if modules:
        return BackboneFacts(
            layer=modules[-1],
            kind='auto',
            extra=0,
            grid=None,
            why='last feature_info stage (timm metadata) or a later map of '
            'the same size',
            head='global_pool',
            attention=_TIMM_ATTENTION,
        )
    return None


def find_facts(backbone: nn.Module) -> Optional[BackboneFacts]:
    """The facts row for this backbone: timm metadata, or one MRO walk.

    Args:
        backbone (nn.Module): The feature extractor.

    Returns:
        BackboneFacts | None: The row of its class or nearest listed parent.
    """
    if is_timm(backbone):
        return timm_facts(backbone)
    return nearest_listed(backbone, FAMILY_FACTS)


def head_tokens(backbone: nn.Module, facts: BackboneFacts) -> int:
    """How many leading tokens the classification head reads.

    0 means the head pools the patch tokens (global average pooling).
    MMPretrain ViTs read all their extra tokens with ``out_type='cls_token'``
    (cls and distillation token for distilled DeiT, whose head averages
    both); timm models with ``global_pool='token'`` read the class token
    only (not register tokens), plus the distillation token of distilled
    DeiT.

    Args:
        backbone (nn.Module): The feature extractor.
        facts (BackboneFacts): Its row.

    Returns:
        int: The number of head tokens.
    """
    if facts.head == 'global_pool':
        if getattr(backbone, 'global_pool', None) != 'token':
            return 0
        return 2 if getattr(backbone, 'dist_token', None) is not None else 1
    if facts.head == 'out_type':
        if getattr(backbone, 'out_type', 'cls_token') not in (
            'cls_token',
            'raw',
        ):
            return 0
        declared = getattr(backbone, 'num_extra_tokens', None)
        # TNT and XCiT read a class token but declare no count.
        return declared if isinstance(declared, int) else 1
    return 0
