"""Native, batched Score-CAM (Wang et al., 2020) in torch.

pytorch-grad-cam's ``ScoreCAM`` builds every masked copy of every image at
once (``B x C x 3 x H x W``: 1.2 GiB per 224 px image for ResNet-50's 2048
channels), copies the activations through numpy and reads each score with
``.item()``. This version computes the same weights with masks upsampled a
chunk at a time, chunks that mix images (``mask_batch_size`` masked inputs
per forward, whatever image they come from), and optionally scores only the
``top_k_channels`` channels of highest mean activation per image.
"""

from typing import List, Optional

import torch
import torch.nn.functional as F

from ..registry import CAM_METHODS
from ..utils.capture import LayerCapture
from ..utils.maps import combine_layers, eigen_projection, spatial_size
from ..utils.model import classifier_logits
from .base import ExplainContext, FullMapMethod

__all__ = ['ScoreCAM', 'score_cam_weights', 'upsample_masks']


def upsample_masks(acts: torch.Tensor, size) -> torch.Tensor:
    """Activations ``(N, h, w)`` -> masks ``(N, H, W)`` in ``[0, 1]``.

    Bilinear with ``align_corners=True`` and a per-mask min-max scaling with
    ``1e-8``: pytorch-grad-cam's ``UpsamplingBilinear2d`` arithmetic.
    """
    up = F.interpolate(
        acts[:, None], size=size, mode='bilinear', align_corners=True
    )[:, 0]
    flat = up.flatten(1)
    lo = flat.min(-1).values[:, None, None]
    hi = flat.max(-1).values[:, None, None]
    return (up - lo) / (hi - lo + 1e-8)


def _channels(acts: torch.Tensor, top_k: Optional[int]) -> torch.Tensor:
    """Channel indices ``(B, K)`` to score: all, or the top-k by mean.

    The mean activation ranks channels by how much they contribute to the
    channel sum; the pruned channels get weight zero.
    """
    bsz, chans = acts.shape[:2]
    if top_k is None or top_k >= chans:
        return torch.arange(chans, device=acts.device).expand(bsz, chans)
    return acts.mean(dim=(2, 3)).topk(top_k, dim=1).indices


def score_cam_weights(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    acts: torch.Tensor,
    targets: torch.Tensor,
    mask_batch_size: int = 32,
    top_k_channels: Optional[int] = None,
) -> torch.Tensor:
    """Score-CAM channel weights ``(B, C)`` (softmax of masked scores).

    Args:
        model (nn.Module): Classifier, eval mode.
        inputs (torch.Tensor): ``(B, 3, H, W)`` preprocessed images.
        acts (torch.Tensor): ``(B, C, h, w)`` target-layer activations of
            ``inputs``.
        targets (torch.Tensor): ``(B, )`` class explained per image.
        mask_batch_size (int): Masked inputs per forward pass. Defaults to
            32.
        top_k_channels (int, optional): Score only this many channels per
            image (``None``: all, which equals pytorch-grad-cam). Defaults
            to None.

    Returns:
        torch.Tensor: ``(B, C)`` weights; unscored channels weigh zero.
    """
    bsz, chans = acts.shape[:2]
    size = spatial_size(inputs)
    chosen = _channels(acts, top_k_channels)  # (B, K)
    pairs = torch.stack(
        torch.meshgrid(
            torch.arange(bsz, device=acts.device),
            torch.arange(chosen.shape[1], device=acts.device),
            indexing='ij',
        ),
        -1,
    ).reshape(-1, 2)
    scores = torch.empty(bsz, chosen.shape[1], device=acts.device)
    with torch.no_grad():
        for start in range(0, len(pairs), mask_batch_size):
            img, col = pairs[start : start + mask_batch_size].unbind(1)
            masks = upsample_masks(acts[img, chosen[img, col]], size)
            logits = classifier_logits(model, inputs[img] * masks[:, None])
            scores[img, col] = logits.float().gather(1, targets[img][:, None])[
                :, 0
            ]
    weights = torch.zeros(bsz, chans, device=acts.device)
    weights.scatter_(1, chosen, scores.softmax(dim=-1))
    return weights


@CAM_METHODS.register_module()
class ScoreCAM(FullMapMethod):
    """Channel weights = softmax of the class score of each masked input.

    Equal to pytorch-grad-cam's ``ScoreCAM`` (tested to 1e-4) when
    ``top_k_channels`` is ``None``.

    Args:
        mask_batch_size (int): Masked inputs per forward pass (memory vs
            speed). Defaults to 32.
        top_k_channels (int, optional): Score only the ``k`` channels of
            highest mean activation per image (others weigh zero): ``C / k``
            times fewer forwards. Defaults to None (all channels).
    """

    aliases = ('score_cam',)
    uses_gradients = False
    needs_layer_gate = False  # no backward: nothing to cut

    def __init__(
        self, mask_batch_size: int = 32, top_k_channels: Optional[int] = None
    ) -> None:
        if mask_batch_size < 1:
            raise ValueError(
                f'mask_batch_size must be >= 1, got {mask_batch_size}.'
            )
        if top_k_channels is not None and top_k_channels < 1:
            raise ValueError(
                f'top_k_channels must be >= 1 or None, got {top_k_channels}.'
            )
        self.mask_batch_size = mask_batch_size
        self.top_k_channels = top_k_channels

    def explain(
        self, ctx: ExplainContext, k: int, eigen_smooth: bool
    ) -> torch.Tensor:
        acts = self._activations(ctx)
        raw = []
        for act in acts:
            weights = score_cam_weights(
                ctx.model,
                ctx.inputs,
                act,
                ctx.targets[:, k],
                self.mask_batch_size,
                self.top_k_channels,
            )
            weighted = weights[:, :, None, None] * act
            raw.append(
                eigen_projection(weighted)
                if eigen_smooth
                else weighted.sum(dim=1)
            )
        return combine_layers(raw, spatial_size(ctx.inputs))[0]

    @staticmethod
    def _activations(ctx: ExplainContext) -> List[torch.Tensor]:
        """Target-layer activations ``(B, C, h, w)`` of the clean inputs."""
        with LayerCapture(ctx.layers) as cap, torch.no_grad():
            classifier_logits(ctx.model, ctx.inputs)
        missing = [
            n for n, o in zip(ctx.spec.layers, cap.outputs) if o is None
        ]
        if missing:
            raise RuntimeError(f'Target layer(s) {missing} did not run.')
        return [ctx.to_nchw(o).float() for o in cap.outputs if o is not None]
