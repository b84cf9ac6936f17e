"""Small value objects shared by resolvers, methods and the engine.

The token layout and the real patch grid travel together in one object so
that no code ever has to guess a grid with ``sqrt(L)``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import LayoutError

__all__ = [
    'TokenLayout',
    'TargetSpec',
    'CAMResult',
    'CAMSample',
    'LAYOUT_KINDS',
]

Grid = Tuple[int, int]
LAYOUT_KINDS = ('nchw', 'nhwc', 'tokens')


@dataclass(frozen=True)
class TokenLayout:
    """How a target layer's output is laid out.

    Args:
        kind (str): ``'nchw'`` (CNN feature map), ``'nhwc'``
            (channels-last map, e.g. ViT-SAM or ConvNeXt blocks with linear
            point-wise convs) or ``'tokens'`` (``(B, L, C)`` sequence).
            Defaults to ``'nchw'``.
        num_extra_tokens (int): Tokens (cls, distillation, ...) that
            precede the patch tokens and are dropped. Only for
            ``'tokens'``. Defaults to 0.
        grid_source (str, optional): Name of a module whose forward output
            carries the patch grid ``(h, w)`` of *this* input (e.g.
            MMPretrain's ``PatchEmbed`` returns ``(x, (h, w))``). When
            ``None`` the grid is solved from the input size and the token
            count (see :func:`solve_grid`). Defaults to None.
        channels_first_tokens (bool): ``(B, C, L)`` instead of
            ``(B, L, C)``. Defaults to False.
    """

    kind: str = 'nchw'
    num_extra_tokens: int = 0
    grid_source: Optional[str] = None
    channels_first_tokens: bool = False

    def __post_init__(self) -> None:
        if self.kind not in LAYOUT_KINDS:
            raise LayoutError(
                f'Unknown layout kind {self.kind!r}; choose from '
                f'{LAYOUT_KINDS}.'
            )
        extra = self.num_extra_tokens
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
            raise LayoutError(
                f'num_extra_tokens must be an int >= 0, got {extra!r}.',
                option='num_extra_tokens',
            )

    def to_nchw(
        self, x: torch.Tensor, grid: Optional[Grid], input_hw: Grid
    ) -> torch.Tensor:
        """Rearrange a layer output into ``(B, C, h, w)``.

        Args:
            x (torch.Tensor): The layer output (or its gradient).
            grid (tuple[int, int], optional): Patch grid captured at run
                time, or ``None``.
            input_hw (tuple[int, int]): Height and width of the network
                input, used to solve the grid when none was captured.

        Returns:
            torch.Tensor: ``(B, C, h, w)``.

        Raises:
            LayoutError: ``x`` does not have the layout's rank, or its
                tokens do not fold onto the grid.
        """
        if self.kind == 'nchw':
            if x.ndim != 4:
                raise LayoutError(
                    f'Target layer output has shape {tuple(x.shape)}, '
                    'expected a (B, C, H, W) feature map. Pick a spatial '
                    'layer as target_layers.'
                )
            return x
        if self.kind == 'nhwc':
            if x.ndim != 4:
                raise LayoutError(
                    f'Expected a channels-last (B, H, W, C) map, '
                    f'got shape {tuple(x.shape)}.'
                )
            return x.permute(0, 3, 1, 2)
        if x.ndim != 3:
            raise LayoutError(
                f'Expected tokens (B, L, C), got shape {tuple(x.shape)}.'
            )
        if self.channels_first_tokens:
            x = x.transpose(1, 2)
        n_tokens = x.shape[1]
        n_patch = n_tokens - self.num_extra_tokens
        if grid is None:
            grid = solve_grid(n_patch, input_hw)
        if grid[0] * grid[1] != n_patch:
            raise LayoutError(
                f'The target layer has {n_tokens} tokens; minus '
                f'{self.num_extra_tokens} extra token(s) that leaves '
                f'{n_patch}, '
                f'but the patch grid of this input is {grid[0]}x{grid[1]} = '
                f'{grid[0] * grid[1]}. Check num_extra_tokens (expected '
                f'{n_tokens - grid[0] * grid[1]} here) or the target layer.'
            )
        x = x[:, self.num_extra_tokens :, :]
        return x.reshape(x.shape[0], grid[0], grid[1], x.shape[2]).permute(
            0, 3, 1, 2
        )


def solve_grid(n_patch: int, input_hw: Grid) -> Grid:
    """Find the grid ``(h, w)`` with ``h * w == n_patch`` for an input.

    Tries the integer strides a patch embedding or downsampling could have
    (``ceil`` and ``floor`` rounding). Used only when the model does not say
    its grid; raises when no stride explains the token count.
    """
    height, width = input_hw
    for stride in range(1, max(height, width) + 1):
        for h, w in (
            (-(-height // stride), -(-width // stride)),
            (height // stride, width // stride),
        ):
            if h * w == n_patch and h > 0 and w > 0:
                return h, w
    raise LayoutError(
        f'Cannot fold {n_patch} patch tokens onto a grid for a '
        f'{height}x{width} input: no integer stride gives that many tokens. '
        'Check num_extra_tokens.'
    )


@dataclass
class TargetSpec:
    """What a resolver decided for one model.

    Args:
        layers (list[str]): Module names (as in
            ``model.named_modules()``).
        layout (TokenLayout): How the outputs of those layers are laid
            out. Defaults to ``TokenLayout()`` (``'nchw'``).
        reason (str): One line saying why these layers; logged for the
            user. Defaults to ``''``.
    """

    layers: List[str]
    layout: TokenLayout = field(default_factory=TokenLayout)
    reason: str = ''


@dataclass
class CAMResult:
    """CAMs for one batch.

    Attributes:
        maps: Per method, float32 ``(B, K, H, W)`` maps in ``[0, 1]`` at the
            input resolution, one per target ``K``.
        raw_maps: Per method, signed maps before ReLU and normalisation,
            resized to the input resolution ``(B, K, H, W)`` and averaged
            over layers, for diverging visualisations.
        targets: ``(B, K)`` explained class indices.
        pred_labels: ``(B,)`` top-1 predictions.
        pred_scores: ``(B,)`` softmax score of the top-1 prediction.
        target_scores: ``(B, K)`` softmax score of each explained class.
        target_layers: Names of the layers used.
        blank: Per method, bool ``(B, K)``: True where that sample's map for
            that target is zero everywhere after the ReLU (no positive
            evidence for the class at this layer), so its ``maps`` entry is
            all zero. Such maps are returned, not dropped; front ends warn.
        descriptors: Per method, float32 ``(B, K, D)`` evidence
            descriptors (:mod:`mmcam_ext.utils.descriptors`); empty unless
            asked for (``explain(..., descriptors=True)``).
    """

    maps: Dict[str, np.ndarray]
    targets: np.ndarray
    pred_labels: np.ndarray
    pred_scores: np.ndarray
    target_scores: np.ndarray
    raw_maps: Dict[str, np.ndarray] = field(default_factory=dict)
    target_layers: Sequence[str] = ()
    blank: Dict[str, np.ndarray] = field(default_factory=dict)
    descriptors: Dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pred_labels)

    def sample(
        self,
        j: int,
        index: int,
        image: np.ndarray,
        kinds: Sequence[str],
        info: Optional[Dict[str, Any]] = None,
    ) -> 'CAMSample':
        """Sample ``j`` of the batch, as handed to the dump writers.

        Args:
            j (int): Row in the batch.
            index (int): Dataset index (hook) or input number (tool).
            image (np.ndarray): ``HxWx3`` uint8 RGB the maps align with;
                maps are cropped to its size.
            kinds (Sequence[str]): The ``K`` target kinds.
            info (dict, optional): Columns shared by the sample's rows.
                Defaults to None.

        Returns:
            CAMSample: The sample.
        """
        h, w = image.shape[:2]
        return CAMSample(
            index=int(index),
            stem=f'{int(index):06d}',
            image=image,
            maps={n: m[j, :, :h, :w] for n, m in self.maps.items()},
            raw_maps={n: m[j, :, :h, :w] for n, m in self.raw_maps.items()},
            kinds=list(kinds),
            targets=[int(t) for t in self.targets[j]],
            target_scores=[float(s) for s in self.target_scores[j]],
            blank={n: b[j] for n, b in self.blank.items()},
            descriptors={n: d[j] for n, d in self.descriptors.items()},
            info=dict(info or {}),
        )


@dataclass
class CAMSample:
    """One explained sample, from the engine to the dump writers.

    The hook, the tool and the inferencer hand this to
    :class:`mmcam_ext.fileio.CAMWriter`, which gives it to every configured
    output writer (:mod:`mmcam_ext.fileio.outputs`).

    Args:
        index (int): Dataset index (hook) or input number (tool).
        stem (str): File-name stem of its files (``'000012'``).
        image (np.ndarray): ``HxWx3`` uint8 RGB the maps align with.
        maps (dict): ``{method: (K, H, W)}`` float maps in ``[0, 1]``.
        kinds (Sequence[str]): ``K`` target kinds (``'pred'``, ``'gt'``,
            ``'top1'``...).
        targets (Sequence[int]): ``K`` explained classes.
        target_scores (Sequence[float]): ``K`` scores of those classes.
        blank (dict): ``{method: (K,) bool}``, maps zero after the ReLU.
            Defaults to ``{}``.
        raw_maps (dict): ``{method: (K, H, W)}`` signed maps before the
            ReLU (what writers store with ``signed=True``). Defaults to
            ``{}``.
        descriptors (dict): ``{method: (K, D)}`` evidence descriptors
            (:mod:`mmcam_ext.utils.descriptors`); empty when not computed.
            Defaults to ``{}``.
        info (dict): Columns shared by the sample's rows (``img_path``,
            ``gt``, ``pred``, ``score``, ``misclassified``, ``rank``).
            Defaults to ``{}``.
    """

    index: int
    stem: str
    image: np.ndarray
    maps: Dict[str, np.ndarray]
    kinds: Sequence[str]
    targets: Sequence[int]
    target_scores: Sequence[float]
    blank: Dict[str, np.ndarray] = field(default_factory=dict)
    raw_maps: Dict[str, np.ndarray] = field(default_factory=dict)
    descriptors: Dict[str, np.ndarray] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)

    def cams(self, signed: bool = False) -> Dict[str, np.ndarray]:
        """The maps to store and draw: the signed ones or the ``[0, 1]``
        ones.

        Raises:
            ValueError: ``signed`` but the sample has no signed maps.
        """
        if not signed:
            return self.maps
        if not self.raw_maps:
            raise ValueError(
                f'Sample {self.index} has no signed maps (raw_maps) to '
                'store with signed=True.'
            )
        return self.raw_maps
