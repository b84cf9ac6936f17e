"""Where each recorded attention entry lives on the stage's token grid.

A block's attention is recorded in the layout the model computes it in:
``(B, W, heads, Nq, Nk)`` for ``W`` windows (one window for global
attention) with ``Nq`` queries and ``Nk`` keys each. A :class:`BlockGeometry`
says, for every window, which token of the block's :class:`TokenSpace` each
local query and key is (``-1`` for padding), so the attention is put back on
the stage's grid without ever forming the dense ``L x L`` matrix:

* shifted windows (Swin): local index -> position in the shifted, padded
  grid -> the cyclic shift undone -> a grid position, or padding;
* overlapping windows (VOLO's outlook attention): a token is a query of up to
  four windows, its row of the global matrix is their sum (what ``fold``
  computes);
* sub-sampled keys (Twins, PVT): keys live on a coarser grid
  (``key_space``); each key stands for the ``stride x stride`` tokens it was
  pooled from.

The explanation methods only need products of a vector over tokens with the
(implicit) global matrix: :func:`apply_attention` gathers the vector at each
window's queries, multiplies by the window's matrix and scatter-adds at the
keys. Between blocks on different grids (patch merging, strided patch
embeddings), :func:`regrid` moves a vector from the coarse grid to the fine
one: as a *flow* (rollout, relevance) each coarse token's mass is split
equally among the fine tokens it merged, as a *score* (grad-attention) each
fine token takes the score of the coarse token that contains it.
"""

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Optional, Tuple

import torch

__all__ = [
    'TokenSpace',
    'BlockGeometry',
    'global_geometry',
    'class_query_geometry',
    'window_geometry',
    'outlook_geometry',
    'subsampled_geometry',
    'query_subsampled_geometry',
    'grid_parents',
    'gather_rows',
    'scatter_cols',
    'apply_attention',
    'keys_to_space',
    'regrid',
    'patch_part',
    'FLOW',
    'SCORE',
]

Grid = Tuple[int, int]
FLOW, SCORE = 'flow', 'score'


def _grid(hw) -> Grid:
    return int(hw[0]), int(hw[1])


@dataclass(frozen=True)
class TokenSpace:
    """The tokens of one block: ``extra`` leading tokens, then a grid.

    Args:
        grid (tuple[int, int]): Patch grid ``(h, w)``, row-major.
        extra (int): Tokens before the patch tokens (class, distillation,
            register tokens). Defaults to 0.
    """

    grid: Grid
    extra: int = 0

    @property
    def size(self) -> int:
        """Number of tokens."""
        return self.extra + self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class BlockGeometry:
    """Where one block's local attention entries live.

    Args:
        query_index (torch.Tensor): ``(W, Nq)`` long, position of each
            window's local query in ``space``; ``-1`` for padding.
        key_index (torch.Tensor): ``(W, Nk)`` long, position of each local
            key in ``key_space``; ``-1`` for padding.
        space (TokenSpace): The block's tokens (its input and output).
        key_space (TokenSpace): Where the keys live: ``space``, or a coarser
            grid for sub-sampled keys.
        key_stride (tuple[int, int], optional): Grid stride between
            ``space`` and ``key_space`` (``None``: the same grid).
            Defaults to None.
        residual (bool): Whether the block adds its input back (a residual
            path). Without one (LeViT's attention-subsampling blocks) the
            queries are the block's output tokens and the keys its input
            tokens. Defaults to True.
    """

    query_index: torch.Tensor
    key_index: torch.Tensor
    space: TokenSpace
    key_space: TokenSpace
    key_stride: Optional[Grid] = None
    residual: bool = True

    @property
    def input_space(self) -> TokenSpace:
        """The tokens the block reads: ``space``, or its keys without a
        residual path."""
        return self.space if self.residual else self.key_space

    @cached_property
    def is_global(self) -> bool:
        """One window in which every token of ``space`` queries every
        token, keys on the same tokens, with a residual path: the recorded
        matrix is the block's matrix as it is (no gather or scatter)."""
        size = self.space.size
        if not (
            self.residual
            and self.key_space == self.space
            and tuple(self.query_index.shape) == (1, size)
            and tuple(self.key_index.shape) == (1, size)
        ):
            return False
        order = torch.arange(size, device=self.query_index.device)
        return bool(
            torch.equal(self.query_index[0], order)
            and torch.equal(self.key_index[0], order)
        )

    @property
    def valid(self) -> torch.Tensor:
        """``(W, Nq, Nk)`` bool: entries between two real tokens."""
        return (self.query_index >= 0)[:, :, None] & (self.key_index >= 0)[
            :, None, :
        ]


# ----------------------------------------------------------------------
# Index maps, one builder per attention pattern.
def global_geometry(space: TokenSpace, device=None) -> BlockGeometry:
    """Every token attends to every token: one window, identity indices.

    Args:
        space (TokenSpace): The block's tokens.
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    index = torch.arange(space.size, device=device)[None]
    return BlockGeometry(index, index, space, space)


def class_query_geometry(
    space: TokenSpace, queries: int = 1, device=None
) -> BlockGeometry:
    """Class attention: only the first ``queries`` tokens query all tokens.

    Args:
        space (TokenSpace): The block's tokens (class token first).
        queries (int): Number of querying (class) tokens. Defaults to 1.
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    keys = torch.arange(space.size, device=device)[None]
    return BlockGeometry(keys[:, :queries], keys, space, space)


@lru_cache(maxsize=256)
def _window_index(
    hw: Grid, window: Grid, shift: Grid, roll_padded: bool
) -> torch.Tensor:
    """``(nW, wh*ww)`` grid positions of each window's tokens (-1: pad)."""
    (h, w), (wh, ww), (sh, sw) = hw, window, shift
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    ys = torch.arange(hp).view(hp // wh, 1, wh, 1)
    xs = torch.arange(wp).view(1, wp // ww, 1, ww)
    ys, xs = torch.broadcast_tensors(ys, xs)  # (nWh, nWw, wh, ww)
    if roll_padded:  # pad, then roll the padded grid (MMPretrain)
        oy, ox = (ys + sh) % hp, (xs + sw) % wp
        real = (oy < h) & (ox < w)
    else:  # roll the real grid, then pad (timm)
        real = (ys < h) & (xs < w)
        oy, ox = (ys + sh) % h, (xs + sw) % w
    index = torch.where(real, oy * w + ox, torch.full_like(oy, -1))
    return index.reshape(-1, wh * ww)


def window_geometry(
    hw: Grid,
    window: Grid,
    shift: Grid = (0, 0),
    roll_padded: bool = True,
    device=None,
) -> BlockGeometry:
    """Non-overlapping (optionally shifted, padded) windows on a grid.

    Windows are numbered row-major over the padded grid and tokens row-major
    inside a window, as ``window_partition`` does. The model pads the grid to
    a multiple of the window at the bottom/right and rolls it by ``-shift``;
    MMPretrain pads first and rolls the padded grid (``roll_padded=True``),
    timm rolls the real grid and pads after.

    Args:
        hw (tuple[int, int]): The real grid ``(H, W)``.
        window (tuple[int, int]): Window size ``(wh, ww)``.
        shift (tuple[int, int]): Cyclic shift of the windows. Defaults to
            ``(0, 0)``.
        roll_padded (bool): Whether the roll acts on the padded grid.
            Defaults to True.
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    index = _window_index(
        _grid(hw), _grid(window), _grid(shift), roll_padded
    ).to(device)
    space = TokenSpace(_grid(hw))
    return BlockGeometry(index, index, space, space)


@lru_cache(maxsize=64)
def _outlook_index(hw: Grid, kernel: int, pad: int, stride: int):
    h, w = hw
    nh = (h + 2 * pad - kernel) // stride + 1
    nw = (w + 2 * pad - kernel) // stride + 1
    ys = (torch.arange(nh) * stride - pad).view(nh, 1, 1, 1)
    xs = (torch.arange(nw) * stride - pad).view(1, nw, 1, 1)
    ys = ys + torch.arange(kernel).view(1, 1, kernel, 1)
    xs = xs + torch.arange(kernel).view(1, 1, 1, kernel)
    ys, xs = torch.broadcast_tensors(ys, xs)
    real = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    index = torch.where(real, ys * w + xs, torch.full_like(ys, -1))
    return index.reshape(nh * nw, kernel * kernel)


def outlook_geometry(
    hw: Grid, kernel: int, pad: int, stride: int, device=None
) -> BlockGeometry:
    """Overlapping ``kernel x kernel`` windows (VOLO's outlook attention).

    Window ``(i, j)`` covers rows ``i*stride - pad + [0, kernel)`` (and the
    same for columns), like ``nn.Unfold``; its output is summed back with
    ``F.fold``, so a token's row of the global matrix is the sum over the
    windows it is in.

    Args:
        hw (tuple[int, int]): The grid ``(H, W)``.
        kernel (int): Window side.
        pad (int): Zero padding of the unfold.
        stride (int): Window stride.
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    index = _outlook_index(_grid(hw), kernel, pad, stride).to(device)
    space = TokenSpace(_grid(hw))
    return BlockGeometry(index, index, space, space)


def subsampled_geometry(
    hw: Grid, key_hw: Grid, stride: Grid, device=None
) -> BlockGeometry:
    """Global attention whose keys were pooled ``stride x stride`` (Twins).

    Args:
        hw (tuple[int, int]): The query grid ``(H, W)``.
        key_hw (tuple[int, int]): The key grid.
        stride (tuple[int, int]): Pooling stride (kernel = stride).
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    space, key_space = TokenSpace(_grid(hw)), TokenSpace(_grid(key_hw))
    queries = torch.arange(space.size, device=device)[None]
    keys = torch.arange(key_space.size, device=device)[None]
    same = key_space.grid == space.grid
    return BlockGeometry(
        queries, keys, space, key_space, None if same else _grid(stride)
    )


def query_subsampled_geometry(
    hw: Grid, query_hw: Grid, device=None
) -> BlockGeometry:
    """Queries on a sub-sampled grid attend every input token; no residual.

    LeViT's attention-subsampling block: its output tokens are the queries
    (taken at every ``stride``-th input position), its input tokens the
    keys, and it has no residual path.

    Args:
        hw (tuple[int, int]): The input (key) grid.
        query_hw (tuple[int, int]): The output (query) grid.
        device (torch.device, optional): Device of the index tensors.
            Defaults to None.

    Returns:
        BlockGeometry: The geometry.
    """
    space, key_space = TokenSpace(_grid(query_hw)), TokenSpace(_grid(hw))
    queries = torch.arange(space.size, device=device)[None]
    keys = torch.arange(key_space.size, device=device)[None]
    return BlockGeometry(queries, keys, space, key_space, residual=False)


# ----------------------------------------------------------------------
# Token-flow operations.
def grid_parents(
    fine: Grid, coarse: Grid, stride: Optional[Grid] = None
) -> torch.Tensor:
    """For each fine token, the coarse token that contains it (-1: none).

    With an explicit ``stride`` (sub-sampled keys: a ``stride``-sized
    kernel) fine tokens past the last full kernel belong to no coarse token.
    Without it (patch merging, strided patch embeddings) the stride is the
    rounded size ratio and border tokens join the last coarse token.

    Args:
        fine (tuple[int, int]): The fine grid.
        coarse (tuple[int, int]): The coarse grid.
        stride (tuple[int, int], optional): The stride. Defaults to None.

    Returns:
        torch.Tensor: ``(fine_h * fine_w,)`` long indices into the coarse
        grid.
    """
    ys, xs = torch.arange(fine[0]), torch.arange(fine[1])
    if stride is None:
        sy = max(1, round(fine[0] / coarse[0]))
        sx = max(1, round(fine[1] / coarse[1]))
        py = (ys // sy).clamp(max=coarse[0] - 1)
        px = (xs // sx).clamp(max=coarse[1] - 1)
        return (py[:, None] * coarse[1] + px[None, :]).flatten()
    py, px = ys // stride[0], xs // stride[1]
    inside = (py < coarse[0])[:, None] & (px < coarse[1])[None, :]
    index = py[:, None] * coarse[1] + px[None, :]
    return torch.where(inside, index, torch.full_like(index, -1)).flatten()


def gather_rows(v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``v`` ``(B, S)`` read at ``index`` ``(W, N)``: ``(B, W, N)``, 0 at -1.

    Args:
        v (torch.Tensor): A vector per sample over the tokens.
        index (torch.Tensor): Token positions, ``-1`` for padding.

    Returns:
        torch.Tensor: The gathered values.
    """
    picked = v[:, index.clamp(min=0)]
    return picked * (index >= 0).to(v.dtype)


def scatter_cols(
    u: torch.Tensor, index: torch.Tensor, size: int
) -> torch.Tensor:
    """Sum ``u`` ``(B, W, N)`` into ``(B, size)`` at ``index``; drop -1.

    Args:
        u (torch.Tensor): Values per window and local token.
        index (torch.Tensor): Token positions ``(W, N)``, ``-1`` dropped.
        size (int): Number of tokens.

    Returns:
        torch.Tensor: The summed vector.
    """
    real = index >= 0
    out = u.new_zeros(u.shape[0], size)
    flat_index = index[real]
    return out.index_add(1, flat_index, u[:, real])


def apply_attention(
    geom: BlockGeometry, v: torch.Tensor, mat: torch.Tensor
) -> torch.Tensor:
    """``v @ M`` for the global matrix ``M`` the local ``mat`` stands for.

    Args:
        geom (BlockGeometry): The block's geometry.
        v (torch.Tensor): ``(B, space.size)`` vector over query tokens.
        mat (torch.Tensor): ``(B, W, Nq, Nk)`` local matrices.

    Returns:
        torch.Tensor: ``(B, key_space.size)`` vector over the keys.
    """
    rows = gather_rows(v, geom.query_index)
    cols = torch.einsum('bwq,bwqk->bwk', rows, mat)
    return scatter_cols(cols, geom.key_index, geom.key_space.size)


def _lift(
    v: torch.Tensor,
    src: TokenSpace,
    dst: TokenSpace,
    mode: str,
    stride: Optional[Grid],
) -> torch.Tensor:
    """Patch part of ``v`` from the coarser ``src`` grid to ``dst``."""
    if src.grid == dst.grid:
        return v
    if src.grid[0] > dst.grid[0] or src.grid[1] > dst.grid[1]:
        raise ValueError(
            f'Cannot carry token scores from the {src.grid} grid of a later '
            f'block back to the coarser {dst.grid} grid of an earlier one.'
        )
    parents = grid_parents(dst.grid, src.grid, stride).to(v.device)
    picked = gather_rows(v, parents[None])[:, 0]
    if mode == SCORE:
        return picked
    counts = torch.bincount(
        parents[parents >= 0], minlength=src.grid[0] * src.grid[1]
    ).to(v.dtype)
    share = gather_rows(counts[None].clamp(min=1), parents[None])[:, 0]
    return picked / share.clamp(min=1)


def regrid(
    v: torch.Tensor,
    src: TokenSpace,
    dst: TokenSpace,
    mode: str = FLOW,
    stride: Optional[Grid] = None,
) -> torch.Tensor:
    """Move a vector from a later block's tokens to an earlier block's.

    Extra tokens that the later block added (a class token appended before
    class-attention blocks) come from parameters, not from the image, so
    their share is dropped; the grid part goes from the coarse grid to the
    fine one as a flow or a score (see the module docstring).

    Args:
        v (torch.Tensor): ``(B, src.size)``.
        src (TokenSpace): The tokens ``v`` is over.
        dst (TokenSpace): The tokens to move to.
        mode (str): ``'flow'`` or ``'score'``. Defaults to ``'flow'``.
        stride (tuple[int, int], optional): Explicit grid stride (see
            :func:`grid_parents`). Defaults to None.

    Returns:
        torch.Tensor: ``(B, dst.size)``.
    """
    if src == dst:
        return v
    if src.extra < dst.extra:
        raise ValueError(
            f'A later block has {src.extra} extra token(s) where an earlier '
            f'one has {dst.extra}; tokens cannot disappear between blocks.'
        )
    extra = v[:, src.extra - dst.extra : src.extra]
    patches = _lift(v[:, src.extra :], src, dst, mode, stride)
    return torch.cat([extra, patches], dim=1)


def keys_to_space(
    geom: BlockGeometry, u: torch.Tensor, mode: str = FLOW
) -> torch.Tensor:
    """A vector over the block's keys, on the block's own tokens.

    Args:
        geom (BlockGeometry): The block's geometry.
        u (torch.Tensor): ``(B, key_space.size)``.
        mode (str): ``'flow'`` or ``'score'``. Defaults to ``'flow'``.

    Returns:
        torch.Tensor: ``(B, space.size)``.
    """
    return regrid(u, geom.key_space, geom.space, mode, geom.key_stride)


def patch_part(v: torch.Tensor, space: TokenSpace) -> torch.Tensor:
    """The patch tokens of ``v`` ``(B, space.size)``: ``(B, h*w)``.

    Args:
        v (torch.Tensor): A vector over the tokens of ``space``.
        space (TokenSpace): Its tokens.

    Returns:
        torch.Tensor: The patch part, row-major over ``space.grid``.
    """
    return v[:, space.extra :]
