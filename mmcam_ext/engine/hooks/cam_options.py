"""Option groups of :class:`CAMVisualizationHook`, built from config dicts.

A config gives each group as a plain dict (``samples=dict(mode='random',
num=8)``); grouping keeps the hook's constructor to a handful of arguments,
and building a frozen dataclass from the dict rejects misspelt keys with the
list of valid ones instead of silently ignoring them.
"""

from dataclasses import dataclass, fields
from typing import (
    Any,
    ClassVar,
    Dict,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

__all__ = [
    'SampleSelection',
    'DumpOptions',
    'ExplainOptions',
    'build_options',
    'SELECTION_MODES',
    'TARGET_KINDS',
    'INDEX_FORMATS',
]

SELECTION_MODES = ('first', 'indices', 'random', 'all')
TARGET_KINDS = ('pred', 'gt', 'both')
INDEX_FORMATS = ('json', 'csv')


class _Dataclass(Protocol):
    """Any dataclass: what :func:`dataclasses.fields` accepts."""

    __dataclass_fields__: ClassVar[Dict[str, Any]]


T = TypeVar('T', bound=_Dataclass)


@dataclass(frozen=True)
class SampleSelection:
    """Which validation samples get CAMs in one evaluation.

    ``mode`` picks candidate dataset indices; the filters then keep only some
    of them; ``max_per_eval`` caps the result. The candidates depend only on
    the dataset (not on batch order or the number of processes), so the same
    samples are explained at every epoch and in 1- and 2-process runs.

    Args:
        mode: ``'first'`` (indices ``0..num-1``), ``'indices'`` (the given
            ``indices``), ``'random'`` (``num`` indices drawn with ``seed``,
            the same draw at every evaluation) or ``'all'``.
        num: Candidates for ``'first'`` and ``'random'``.
        indices: Dataset indices for ``'indices'``.
        seed: Seed of the ``'random'`` draw.
        misclassified_only: Keep only samples the model gets wrong (the
            samples one most wants to understand).
        classes: Keep only samples whose ground truth is one of these
            classes (indices or names from the dataset's ``classes``).
        max_per_eval: Cap per evaluation, so a misconfigured filter cannot
            dump a whole data set. Under ``N`` processes each rank takes at
            most ``ceil(max_per_eval / N)`` (ranks cannot see each other's
            counts without a collective per iteration).
    """

    mode: str = 'first'
    num: int = 8
    indices: Sequence[int] = ()
    seed: int = 0
    misclassified_only: bool = False
    classes: Optional[Sequence[Union[int, str]]] = None
    max_per_eval: int = 32

    def __post_init__(self) -> None:
        _check_choice('samples.mode', self.mode, SELECTION_MODES)
        if self.mode == 'indices' and not self.indices:
            raise ValueError(
                "samples.mode='indices' needs a non-empty "
                'samples.indices list of dataset indices.'
            )
        if self.num < 1 or self.max_per_eval < 1:
            raise ValueError(
                'samples.num and samples.max_per_eval must be '
                f'>= 1, got {self.num} and {self.max_per_eval}.'
            )


@dataclass(frozen=True)
class DumpOptions:
    """Where and how CAMs are written.

    Args:
        out_dir: Folder under the runner's ``work_dir`` (or absolute); each
            evaluation writes into its own sub-folder ``<phase>_epoch_<n>``,
            ``<phase>_iter_<n>`` or, for test and val-only runs,
            ``<phase>_<timestamp>``.
        save_raw: Also save each map as ``.npy`` (float32 ``H x W``), for
            scoring CAMs later without re-running the model.
        index_format: ``'json'`` or ``'csv'``.
        gallery: Write ``index.html`` (browsable from disk).
        to_backends: Also send one grid per sample (original + one overlay
            per method) to the runner's visualizer backends.
        alpha: Heat-map opacity in overlays.
        colormap: Matplotlib colormap name.
        signed: Show the signed map (before ReLU) with a diverging colormap.
    """

    out_dir: str = 'cam'
    save_raw: bool = False
    index_format: str = 'json'
    gallery: bool = True
    to_backends: bool = True
    alpha: float = 0.5
    colormap: str = 'jet'
    signed: bool = False

    def __post_init__(self) -> None:
        _check_choice('output.index_format', self.index_format, INDEX_FORMATS)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f'output.alpha must be in [0, 1], got {self.alpha}.'
            )


@dataclass(frozen=True)
class ExplainOptions:
    """How the CAM engine is set up.

    Args:
        target_layers: Module names; ``None`` lets the resolver choose (it
            logs its choice and why).
        num_extra_tokens: Override the resolver's count of cls/dist tokens.
        aug_smooth: Average over flips x brightness (6 passes: slower).
        eigen_smooth: First principal component instead of channel sum.
    """

    target_layers: Optional[Sequence[str]] = None
    num_extra_tokens: Optional[int] = None
    aug_smooth: bool = False
    eigen_smooth: bool = False


def build_options(
    cls: Type[T], cfg: Union[None, T, Dict[str, Any]], arg: str
) -> T:
    """Build option group ``cls`` from a dict, refusing unknown keys.

    Args:
        cls: The dataclass to build.
        cfg: ``None`` (defaults), an instance, or a dict of its fields.
        arg: Argument name, for the error message.
    """
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f'{arg} must be a dict, got {type(cfg).__name__}.')
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise KeyError(
            f'Unknown key(s) {unknown} in {arg}; valid keys: {valid}.'
        )
    return cls(**cfg)


def _check_choice(arg: str, value: Any, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f'{arg} must be one of {choices}, got {value!r}.')
