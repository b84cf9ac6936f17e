"""Facts per backbone family: which layer to explain and how it is laid out.

One row per backbone class of MMPretrain 1.2.0 (subclasses are covered by
their parent's row through the MRO walk of :func:`find_facts`). A row is data,
read by one mechanism (:class:`~mmcam_ext.resolvers.family.FamilyResolver`):

* ``layer``: module path relative to the feature extractor (``backbone``).
  Negative integers index from the end of a ``ModuleList``/``Sequential``
  (``'layers.-1.ln1'`` = the last block's ``ln1``); ``'a|b'`` tries ``a``
  first, then ``b`` (for optional modules); a leading ``/`` makes the path
  relative to the whole classifier (a neck). ``None`` means *the last spatial
  map that runs under the backbone* (see ``ForwardTrace.last_spatial``): for
  CNNs that is the output of the last stage, whatever the stage is called.
* ``kind``: ``'nchw'``, ``'nhwc'`` or ``'tokens'``.
* ``extra``: extra (cls/distillation) tokens before the patch tokens at that
  layer; ``None`` reads ``backbone.num_extra_tokens``.
* ``grid``: module whose output carries this input's patch grid (last int
  pair, or the spatial size of a 4-D output); ``None`` solves the grid from
  the input size (``solve_grid``) where the model reports none.
* ``why``: one line, logged with the choice.
"""

from dataclasses import dataclass
from typing import Dict, Optional

from torch import nn

__all__ = ['Facts', 'FAMILY_FACTS', 'TIMM_CNNS', 'find_facts', 'LAST_STAGE']

LAST_STAGE = 'output of the last stage: the deepest map with a spatial layout'


@dataclass(frozen=True)
class Facts:
    """Where to look in one backbone family (see the module docstring)."""

    layer: Optional[str] = None
    kind: str = 'nchw'
    extra: Optional[int] = 0
    grid: Optional[str] = None
    why: str = LAST_STAGE


_CNN = Facts()
# Tokens of a hierarchical transformer's last stage after its norm; the grid
# comes from the stage, which returns ``(x, hw_shape)``.
_HIER = Facts(
    'norm3',
    'tokens',
    0,
    'stages.-1',
    'last-stage tokens after their norm (no class token)',
)

FAMILY_FACTS: Dict[str, Facts] = {
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
            'MobileViT',
            'Vig',
            'PyramidVig',
            'RepMLPNet',
            'LeNet5',
            'AlexNet',
        ],
        _CNN,
    ),
    # Norm after global pooling (1x1 map): the last stage output instead.
    'ConvNeXt': Facts(why=LAST_STAGE + '; its final norm runs after pooling'),
    'HorNet': Facts(why=LAST_STAGE + '; its final norm runs after pooling'),
    'EdgeNeXt': Facts(why=LAST_STAGE + '; its final norm runs after pooling'),
    # Conformer: the conv branch's last map (the transformer branch only
    # reaches the head through its class token).
    'Conformer': Facts(why='last map of the conv branch (conv head input)'),
    # HRNet's four branches meet only in the classification neck.
    'HRNet': Facts(
        '/neck.0.final_layer|/neck.final_layer',
        why='HRFuseScales output: all four branches fused',
    ),
    # --- Hierarchical transformers: tokens, no class token -------------------
    'SwinTransformer': _HIER,
    'SwinTransformerV2': _HIER,
    'DaViT': _HIER,
    'PCPVT': Facts(
        'norm_after_stage3',
        'tokens',
        0,
        'patch_embeds.-1',
        'last-stage tokens after their norm',
    ),
    'SVT': Facts(
        'norm_after_stage3',
        'tokens',
        0,
        'patch_embeds.-1',
        'last-stage tokens after their norm',
    ),
    'MViT': Facts(
        'norm3|blocks.-1',
        'tokens',
        None,
        'blocks.-1',
        'last-block tokens after the final norm',
    ),
    'MixMIMTransformer': Facts(
        'norm', 'tokens', 0, None, 'last-stage tokens after the final norm'
    ),
    'TinyViT': Facts(
        'stages.-1',
        'tokens',
        0,
        None,
        'last-stage tokens; its final norm runs after pooling',
    ),
    'LeViT': Facts(
        'stages.-1',
        'tokens',
        0,
        None,
        'last-stage tokens (no class token, no final norm)',
    ),
    'EfficientFormer': Facts(
        'norm3|network.-1',
        'tokens',
        0,
        None,
        'last (attention) stage tokens after the norm',
    ),
    'HiViT': Facts(
        'fc_norm|norm|blocks.-1',
        'tokens',
        0,
        'patch_embed',
        'main-stage tokens after the final norm',
    ),
    # --- Plain transformers whose head sees the patch tokens -----------------
    'MlpMixer': Facts(
        'ln1',
        'tokens',
        0,
        'patch_embed',
        'patch tokens after the final norm (no class token)',
    ),
    'RevVisionTransformer': Facts(
        'fusion_layer',
        'tokens',
        None,
        'patch_embed',
        'fused two-stream tokens before average pooling',
    ),
    # XCiT's class token joins only in the class-attention layers, which the
    # patch tokens of the last XCA block feed: no extra token there.
    'XCiT': Facts(
        'xca_layers.-1',
        'tokens',
        0,
        'patch_embed',
        'last XCA block: its patch tokens feed the class attention',
    ),
    # ViT-SAM keeps channels-last maps (B, H, W, C) through its blocks.
    'ViTSAM': Facts(
        'layers.-1',
        'nhwc',
        0,
        None,
        'last block output, channels-last (B, H, W, C)',
    ),
}

# timm CNNs (``TimmClassifier``) that share a class name with a row above and
# follow the same rule (last spatial map). Other timm models use the generic
# fallback; timm's VisionTransformer has its own resolver (``vit.py``).
TIMM_CNNS = (
    'ResNet',
    'EfficientNet',
    'MobileNetV3',
    'ConvNeXt',
    'RegNet',
    'DenseNet',
    'VGG',
    'InceptionV3',
)


def find_facts(backbone: nn.Module) -> Optional[Facts]:
    """The facts row for this backbone's class or its nearest parent."""
    for cls in type(backbone).__mro__:
        if cls.__name__ in FAMILY_FACTS:
            return FAMILY_FACTS[cls.__name__]
    return None
