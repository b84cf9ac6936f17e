"""One cheap MMPretrain 1.2.0 zoo config per backbone family, with its input.

Each case names the zoo entry (a model name from ``mmpretrain.list_models()``
or a config path under MMPretrain's ``.mim/configs``), the smallest input the
model accepts (fixed-size position tables force 224 on some), and overrides
that shrink the model without changing its class or layer structure.
"""

import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, Tuple

import mmpretrain
from mmengine.config import Config
from mmpretrain.apis.model import ModelHub

CONFIG_ROOT = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')


@dataclass(frozen=True)
class ZooCase:
    family: str
    config: str  # model name, or config path relative to CONFIG_ROOT
    size: Tuple[int, int] = (96, 64)  # H != W: the map's aspect must follow
    overrides: Dict = field(default_factory=dict)
    in_channels: int = 3
    # Re-draw weights so an untrained model keeps spatial detail (LeViT).
    rescale_init: bool = False

    def model_config(self) -> Config:
        """The zoo config with the overrides merged in.

        A part the base config sets to ``None`` (ViT-SAM's neck and head) is
        replaced outright, since a dict cannot be merged into ``None``.
        """
        if self.config.endswith('.py'):
            cfg = Config.fromfile(osp.join(CONFIG_ROOT, self.config))
        else:
            cfg = ModelHub.get(self.config).config.copy()
        for key, value in self.overrides.items():
            if cfg.model.get(key) is None:
                cfg.model[key] = value
            else:
                cfg.merge_from_dict({f'model.{key}': value})
        return cfg


# A linear head for headless zoo configs (ViT-SAM), so the model classifies.
def _head(channels: int) -> Dict:
    return dict(
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=channels),
    )


# Models with fixed-size position tables / attention biases / MLPs: 224 only.
SQUARE = (224, 224)
# Window attention: pad maps smaller than a window (small test inputs).
PAD = dict(backbone=dict(pad_small_map=True))

ZOO_CASES = [
    ZooCase('ResNet', 'resnet18_8xb32_in1k'),
    ZooCase('ResNetV1c', 'resnetv1c50_8xb32_in1k'),
    ZooCase('ResNetV1d', 'resnetv1d50_8xb32_in1k'),
    ZooCase('ResNeXt', 'resnext50-32x4d_8xb32_in1k'),
    ZooCase('SE-ResNet', 'seresnet50_8xb32_in1k'),
    ZooCase('Res2Net', 'res2net50-w14-s8_3rdparty_8xb32_in1k'),
    ZooCase('ResNeSt', 'resnest/resnest50_32xb64_in1k.py'),
    ZooCase('ResNet-CIFAR', 'resnet18_8xb16_cifar10', (32, 32)),
    ZooCase('RegNet', 'regnetx-400mf_8xb128_in1k'),
    ZooCase('WRN', 'wide-resnet50_3rdparty_8xb32_in1k'),
    ZooCase('VGG', 'vgg11_8xb32_in1k', SQUARE),
    ZooCase('DenseNet', 'densenet121_3rdparty_in1k'),
    ZooCase('MobileNetV2', 'mobilenet-v2_8xb32_in1k'),
    ZooCase('MobileNetV3', 'mobilenet-v3-small_8xb128_in1k'),
    ZooCase('MobileOne', 'mobileone-s0_8xb32_in1k'),
    ZooCase('EfficientNet', 'efficientnet-b0_3rdparty_8xb32_in1k'),
    ZooCase('EfficientNetV2', 'efficientnetv2-b0_3rdparty_in1k'),
    ZooCase('ConvNeXt', 'convnext-tiny_32xb128_in1k'),
    ZooCase('ConvNeXtV2', 'convnext-v2-atto_3rdparty-fcmae_in1k'),
    ZooCase('ShuffleNetV1', 'shufflenet-v1-1x_16xb64_in1k'),
    ZooCase('ShuffleNetV2', 'shufflenet-v2-1x_16xb64_in1k'),
    ZooCase('RepVGG', 'repvgg-a0_8xb32_in1k'),
    ZooCase('HRNet', 'hrnet-w18_3rdparty_8xb32_in1k'),
    ZooCase('CSPDarkNet', 'cspdarknet50_3rdparty_8xb32_in1k'),
    ZooCase('CSPResNet', 'cspresnet50_3rdparty_8xb32_in1k'),
    ZooCase('CSPResNeXt', 'cspresnext50_3rdparty_8xb32_in1k'),
    ZooCase('InceptionV3', 'inception-v3_3rdparty_8xb32_in1k', (192, 128)),
    ZooCase('HorNet', 'hornet-tiny_3rdparty_in1k'),
    ZooCase('VAN', 'van-tiny_3rdparty_in1k'),
    ZooCase('ConvMixer', 'convmixer-768-32_3rdparty_in1k'),
    ZooCase('RepLKNet', 'replknet-31l_in21k-pre_3rdparty_in1k-384px'),
    ZooCase('EdgeNeXt', 'edgenext-xxsmall_3rdparty_in1k'),
    ZooCase(
        'EfficientFormer', 'efficientformer-l1_3rdparty_8xb128_in1k', SQUARE
    ),
    ZooCase('RIFormer', 'riformer-s12_in1k'),
    ZooCase('PoolFormer', 'poolformer-s12_3rdparty_32xb128_in1k'),
    ZooCase('TinyViT', 'tinyvit-5m_3rdparty_in1k', SQUARE),
    ZooCase('MobileViT', 'mobilevit-xxsmall_3rdparty_in1k'),
    ZooCase('LeViT', 'levit-128s_3rdparty_in1k', SQUARE, rescale_init=True),
    ZooCase('Conformer', 'conformer-tiny-p16_3rdparty_in1k'),
    ZooCase('DaViT', 'davit-tiny_3rdparty_in1k', overrides=PAD),
    ZooCase('Vig', 'vig-tiny_3rdparty_in1k', SQUARE),
    ZooCase('PyramidVig', 'pvig-tiny_3rdparty_in1k', SQUARE),
    ZooCase('RepMLP', 'repmlp-base_3rdparty_8xb64_in1k', SQUARE),
    ZooCase('MLP-Mixer', 'mlp-mixer-base-p16_3rdparty_64xb64_in1k', SQUARE),
    ZooCase('ViT', 'vit-base-p16_32xb128-mae_in1k'),
    ZooCase('DeiT', 'deit-tiny_4xb256_in1k'),
    ZooCase('DeiT-distilled', 'deit-tiny-distilled_3rdparty_in1k'),
    ZooCase('DeiT3', 'deit3-small-p16_3rdparty_in1k'),
    ZooCase('BEiT', 'beit-base-p16_beit-pre_8xb128-coslr-100e_in1k', SQUARE),
    ZooCase(
        'EVA',
        'beit-l-p14_eva-pre_3rdparty_in1k-196px',
        (112, 84),
        dict(backbone=dict(arch='b'), head=dict(in_channels=768)),
    ),
    ZooCase(
        'EVA02', 'vit-tiny-p14_eva02-in21k-pre_3rdparty_in1k-336px', (112, 84)
    ),
    ZooCase('T2T-ViT', 't2t-vit-t-14_8xb64_in1k'),
    ZooCase('XCiT', 'xcit-nano-12-p16_3rdparty_in1k'),
    ZooCase('HiViT', 'hivit-tiny-p16_16xb64_in1k', SQUARE),
    ZooCase('RevViT', 'revvit-small_3rdparty_in1k'),
    ZooCase('MViT', 'mvitv2-tiny_3rdparty_in1k'),
    ZooCase('Twins-PCPVT', 'twins-pcpvt-small_3rdparty_8xb128_in1k'),
    ZooCase('Twins-SVT', 'twins-svt-small_3rdparty_8xb128_in1k'),
    ZooCase('Swin', 'swin-tiny_16xb64_in1k', overrides=PAD),
    ZooCase('SwinV2', 'swinv2-tiny-w8_3rdparty_in1k-256px', overrides=PAD),
    ZooCase('TNT', 'tnt-small-p16_3rdparty_in1k', SQUARE),
    ZooCase(
        'ViT-SAM',
        'sam/vit-base-p16_sam_headless.py',
        (128, 96),
        dict(backbone=dict(img_size=128, window_size=4), **_head(256)),
    ),
    ZooCase('MixMIM', 'mixmim-base_mixmim-pre_8xb128-coslr-100e_in1k', SQUARE),
]
