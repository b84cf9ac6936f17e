"""Which samples of an evaluation get CAMs, identically for 1 or N ranks.

:class:`SampleSelection` says what the user wants; :func:`check_selection`
checks it against the dataset when the run starts; :class:`EvalSelection`
applies it to one evaluation's batches on one rank.

The order a single process takes samples in is the sampler's order: for
MMEngine's ``DefaultSampler`` rank ``r`` of ``N`` sees positions
``r, r + N, r + 2N, ...`` of that order, so shard position ``p`` is global
position ``p * N + r``. Each rank accepts at most ``max_per_eval``
candidates; the hook gathers their global positions at the end of the
evaluation and keeps the first ``max_per_eval`` (see
:func:`first_in_order`), the same samples one process would keep.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Set, Tuple

import numpy as np
from mmengine.dataset import DefaultSampler

from ...errors import InputError
from .cam_options import SampleSelection

__all__ = [
    'EvalSelection',
    'Pick',
    'check_selection',
    'class_ids',
    'first_in_order',
    'label_of',
]


@dataclass(frozen=True)
class Pick:
    """One sample to explain.

    Args:
        row (int): Position in the batch.
        index (int): Dataset index.
        order (int): Position in single-process order (the cap's order).
    """

    row: int
    index: int
    order: int


def label_of(sample: Any, key: str) -> Optional[int]:
    """First label of ``gt_label``/``pred_label`` as int, or ``None``.

    Args:
        sample (DataSample): A data sample (``DataSample``).
        key (str): ``'gt_label'`` or ``'pred_label'``.

    Returns:
        int | None: The label.
    """
    value = sample.get(key)
    if value is None or len(value) == 0:
        return None
    return int(value[0])


def class_ids(
    wanted: Optional[Sequence[Any]], classes: Optional[Sequence[str]]
) -> Optional[Set[int]]:
    """Class filter as indices; names are looked up in ``classes``.

    Raises:
        InputError: For a name the dataset does not have, listing its
            classes, or an index outside them.
    """
    if wanted is None:
        return None
    names = list(classes or [])
    ids = set()
    for cls in wanted:
        if isinstance(cls, str):
            if cls not in names:
                raise InputError(
                    f'samples.classes: no class {cls!r} in the dataset; '
                    f'its classes are {names}.'
                )
            ids.add(names.index(cls))
        elif names and not 0 <= int(cls) < len(names):
            raise InputError(
                f'samples.classes: class index {cls} is out of range: the '
                f'dataset has {len(names)} classes (0..{len(names) - 1}).'
            )
        else:
            ids.add(int(cls))
    return ids


def check_selection(sel: SampleSelection, dataset: Any) -> None:
    """Refuse options that cannot work on ``dataset`` (run start).

    Raises:
        InputError: Indices out of range, unknown class names.
    """
    size = len(dataset)
    if sel.mode == 'indices':
        bad = [int(i) for i in sel.indices if not 0 <= int(i) < size]
        if bad:
            raise InputError(
                f'samples.indices {bad} out of range: the dataset has '
                f'{size} samples (0..{size - 1}).'
            )
    class_ids(sel.classes, dataset.metainfo.get('classes'))


def candidates(sel: SampleSelection, size: int) -> Optional[Set[int]]:
    """Candidate dataset indices of ``sel`` (``None``: every sample)."""
    if sel.mode == 'all':
        return None
    if sel.mode == 'first':
        return set(range(min(sel.num, size)))
    if sel.mode == 'random':
        rng = np.random.default_rng(sel.seed)
        return {
            int(i) for i in rng.choice(size, min(sel.num, size), replace=False)
        }
    return {int(i) for i in sel.indices if 0 <= int(i) < size}


@dataclass
class EvalSelection:
    """The selection of one evaluation on one rank.

    Args:
        sel (SampleSelection): What to select.
        candidates (set[int] | None): Candidate indices (``None``: all).
        class_ids (set[int] | None): Ground-truth class filter.
        local_indices (list[int]): This rank's dataset indices, in order.
        rank (int): This rank.
        world_size (int): Number of ranks.
        default_sampler (bool): The sampler is MMEngine's
            ``DefaultSampler`` (shard positions map to global order; its
            padding repeats samples at the end of the last shards).
        dataset_size (int): Samples in the dataset.
    """

    sel: SampleSelection
    candidates: Optional[Set[int]]
    class_ids: Optional[Set[int]]
    local_indices: List[int]
    rank: int
    world_size: int
    default_sampler: bool
    dataset_size: int
    position: int = 0
    taken: int = 0
    _accepted: Set[int] = field(default_factory=set)

    @classmethod
    def build(
        cls, sel: SampleSelection, loader: Any, rank: int, world_size: int
    ) -> 'EvalSelection':
        """The selection of one evaluation of ``loader`` on this rank."""
        dataset = loader.dataset
        return cls(
            sel,
            candidates(sel, len(dataset)),
            class_ids(sel.classes, dataset.metainfo.get('classes')),
            [int(i) for i in iter(loader.sampler)],
            rank,
            world_size,
            isinstance(loader.sampler, DefaultSampler),
            len(dataset),
        )

    def expected(self) -> Optional[List[int]]:
        """This rank's dataset indices it will explain, in order, where
        known before the evaluation (no filter on predictions or classes;
        a cap only on one process); else ``None``."""
        sel = self.sel
        if sel.misclassified_only or self.class_ids is not None:
            return None
        cands = self.candidates
        out = list(
            dict.fromkeys(
                i for i in self.local_indices if cands is None or i in cands
            )
        )
        cap = sel.max_per_eval
        if cap is not None and len(out) > cap:
            return out[:cap] if self.world_size == 1 else None
        if cap is not None and self.world_size > 1:
            total = self.dataset_size if cands is None else len(cands)
            if total > cap:
                return None
        return out

    def order(self, pos: int, index: int) -> int:
        """Single-process position of shard position ``pos``."""
        if self.default_sampler:
            return pos * self.world_size + self.rank
        return index

    def _in_shard(self, pos: int) -> bool:
        """Not the sampler's padding (global positions past the end)."""
        return not self.default_sampler or (
            self.order(pos, 0) < self.dataset_size
        )

    def _full(self) -> bool:
        cap = self.sel.max_per_eval
        return cap is not None and self.taken >= cap

    def may_pick(self, size: int) -> bool:
        """Whether the next batch of ``size`` could hold a pick (before
        its forward: candidates, padding and cap only)."""
        if self._full():
            return False
        for pos in range(self.position, self.position + size):
            if pos >= len(self.local_indices) or not self._in_shard(pos):
                continue
            idx = self.local_indices[pos]
            if self.candidates is None or idx in self.candidates:
                return True
        return False

    def pick(self, outputs: Sequence[Any]) -> List[Pick]:
        """Samples of this batch to explain (and advance the position).

        Args:
            outputs (Sequence): The loop's data samples of the batch.

        Returns:
            list[Pick]: Accepted picks, at most the cap per rank.
        """
        start, self.position = self.position, self.position + len(outputs)
        picks: List[Pick] = []
        for i, sample in enumerate(outputs):
            pos = start + i
            if self._full() or not self._in_shard(pos):
                break
            idx = sample.get('sample_idx')
            idx = int(self.local_indices[pos] if idx is None else idx)
            if idx in self._accepted or not self._wanted(idx, sample):
                continue
            self._accepted.add(idx)
            self.taken += 1
            picks.append(Pick(i, idx, self.order(pos, idx)))
        return picks

    def _wanted(self, idx: int, sample: Any) -> bool:
        if self.candidates is not None and idx not in self.candidates:
            return False
        gt = label_of(sample, 'gt_label')
        if self.sel.misclassified_only and (
            gt is None or gt == label_of(sample, 'pred_label')
        ):
            return False
        return self.class_ids is None or gt in self.class_ids


def first_in_order(
    parts: Sequence[Sequence[Tuple[int, int]]], cap: Optional[int]
) -> Set[Tuple[int, int]]:
    """The ``cap`` first ``(order, index)`` pairs over all ranks.

    Args:
        parts (Sequence): Per rank, its accepted ``(order, index)`` pairs.
        cap (int | None): How many to keep (``None``: all).

    Returns:
        set[tuple[int, int]]: The kept pairs.
    """
    merged = sorted({p for part in parts for p in part})
    return set(merged if cap is None else merged[:cap])
