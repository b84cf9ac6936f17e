"""Option groups of :class:`CAMVisualizationHook`, built from config dicts.

A config gives each group as a plain dict (``samples=dict(mode='random',
num=8)``); grouping keeps the hook's constructor to a handful of arguments,
and building a frozen dataclass from the dict rejects misspelt keys with the
list of valid ones instead of silently ignoring them.
"""

from dataclasses import dataclass, fields, replace
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

from ...fileio.outputs import WriterOptions

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
        mode (str): ``'first'`` (indices ``0..num-1``), ``'indices'``
            (the given ``indices``), ``'random'`` (``num`` indices drawn
            with ``seed``, the same draw at every evaluation) or ``'all'``.
            Defaults to ``'first'``.
        num (int): Candidates for ``'first'`` and ``'random'``. Defaults
            to 8.
        indices (Sequence[int]): Dataset indices for ``'indices'``.
            Defaults to ``()``.
        seed (int): Seed of the ``'random'`` draw. Defaults to 0.
        misclassified_only (bool): Keep only samples the model gets wrong
            (the samples one most wants to understand). Defaults to False.
        classes (Sequence[int | str], optional): Keep only samples whose
            ground truth is one of these classes (indices or names from
            the dataset's ``classes``). Defaults to None.
        max_per_eval (int, optional): Cap per evaluation, so a
            misconfigured filter cannot dump a whole data set; ``None``
            means no cap. The samples kept are the first ones a single
            process would take, also under ``N`` processes (each rank holds
            back up to ``max_per_eval`` candidates and the gathered set is
            cut to the cap in single-process order before anything is
            written). Defaults to 32.
    """

    mode: str = 'first'
    num: int = 8
    indices: Sequence[int] = ()
    seed: int = 0
    misclassified_only: bool = False
    classes: Optional[Sequence[Union[int, str]]] = None
    max_per_eval: Optional[int] = 32

    @property
    def bounded(self) -> bool:
        """Whether the selection has a size bound (``mode`` other than
        ``'all'``, or ``max_per_eval`` set)."""
        return self.mode != 'all' or self.max_per_eval is not None

    def __post_init__(self) -> None:
        _check_choice('samples.mode', self.mode, SELECTION_MODES)
        if self.mode == 'indices' and not self.indices:
            raise ValueError(
                "samples.mode='indices' needs a non-empty "
                'samples.indices list of dataset indices.'
            )
        _check_count('samples.num', self.num)
        if self.max_per_eval is not None:
            _check_count('samples.max_per_eval', self.max_per_eval)
        bad = [i for i in self.indices if not _is_int(i) or int(i) < 0]
        if bad:
            raise ValueError(
                f'samples.indices must be dataset indices (ints >= 0), '
                f'got {bad}.'
            )


@dataclass(frozen=True)
class DumpOptions:
    """Where and how CAMs are written.

    Args:
        out_dir (str): Folder under the runner's ``work_dir`` (or
            absolute); each evaluation writes into its own sub-folder
            ``<phase>_epoch_<n>``, ``<phase>_iter_<n>`` or, for test and
            val-only runs, ``<phase>_<timestamp>``. Defaults to ``'cam'``.
        save_raw (bool): Also save each map as ``.npy`` (float32
            ``H x W``), for scoring CAMs later without re-running the
            model. Defaults to False.
        index_format (str): ``'json'`` or ``'csv'``. Defaults to
            ``'json'``.
        gallery (bool): Write ``index.html`` (browsable from disk).
            Defaults to True.
        to_backends (bool): Also send one grid per sample (original + one
            overlay per method) to the runner's visualizer backends.
            Defaults to True.
        alpha (float): Heat-map opacity in overlays. Defaults to 0.5.
        colormap (str): Matplotlib colormap name. Defaults to ``'jet'``.
        signed (bool): Show the signed map (before ReLU) with a diverging
            colormap (raw maps are then stored as float32: signed values
            can be too small for float16). Defaults to False.
        save_images (bool | str): Per-sample PNGs (the input and one
            overlay per target and method). ``'auto'``: on for a bounded
            selection, off when the hook explains every sample
            (``samples.mode='all'`` with ``max_per_eval=None``), where PNGs per
            sample would cost about a quarter of a small model's test time
            (see the README); the gallery still shows every sample from
            the thumbnail sheets. Off, an evaluation writes O(methods)
            files: the index, the map store, thumbnail sheets, gallery and
            report. Defaults to ``'auto'``.
        raw_dtype (str): ``'float16'`` (half the size, about 3 decimals on
            ``[0, 1]`` maps) or ``'float32'``. Defaults to ``'float16'``.
        raw_downsample (int): Store raw maps this many times smaller.
            Defaults to 1.
        thumbnails (bool): Thumbnail sheets for the gallery (a tile per
            sample and map, 1024 tiles per JPEG sheet). Defaults to True.
        report (bool): Write the false-positive report
            (``false_positives.*``: misclassified samples grouped by ground
            truth -> prediction). Defaults to True.
        backend_samples (int, optional): Grids sent to the vis backends per
            evaluation at most (the first samples in dataset order);
            ``None``: all. Defaults to 64.
        max_pending (int): Write jobs queued for the background writer at
            most (``0``: write in the loop's thread). Defaults to 64.
        descriptors (bool): With ``save_raw``, also store each map's
            evidence descriptor (``descriptors/``, for
            ``python -m mmcam_ext patterns``). Defaults to True.
        writers (Sequence[dict]): More output writers, as
            ``OUTPUT_WRITERS`` config dicts (see ``docs/outputs.md``).
            Defaults to ``()``.
    """

    out_dir: str = 'cam'
    save_raw: bool = False
    index_format: str = 'json'
    gallery: bool = True
    to_backends: bool = True
    alpha: float = 0.5
    colormap: str = 'jet'
    signed: bool = False
    save_images: Union[bool, str] = 'auto'
    raw_dtype: str = 'float16'
    raw_downsample: int = 1
    thumbnails: bool = True
    report: bool = True
    backend_samples: Optional[int] = 64
    max_pending: int = 64
    descriptors: bool = True
    writers: Sequence[Dict[str, Any]] = ()

    def __post_init__(self) -> None:
        _check_choice('output.index_format', self.index_format, INDEX_FORMATS)
        if not isinstance(self.save_images, bool) and (
            self.save_images != 'auto'
        ):
            raise ValueError(
                "output.save_images must be True, False or 'auto', got "
                f'{self.save_images!r}.'
            )
        try:
            self.writer_options()
        except ValueError as err:
            raise ValueError(f'output.{err}') from None
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f'output.alpha must be in [0, 1], got {self.alpha}.'
            )
        if self.backend_samples is not None:
            _check_count('output.backend_samples', self.backend_samples, 0)

    def for_selection(self, bounded: bool) -> 'DumpOptions':
        """These options with ``save_images='auto'`` decided.

        Args:
            bounded (bool): Whether the selection is bounded
                (:attr:`SampleSelection.bounded`).

        Returns:
            DumpOptions: ``save_images`` a bool.
        """
        if isinstance(self.save_images, bool):
            return self
        return replace(self, save_images=bounded)

    def writer_options(self, suffix: str = '') -> WriterOptions:
        """The writer's options (checked there, for hook and tool)."""
        return WriterOptions(
            save_images=self.save_images is not False,
            save_raw=self.save_raw,
            raw_dtype=self.raw_dtype,
            raw_downsample=self.raw_downsample,
            thumbnails=self.thumbnails,
            descriptors=self.descriptors,
            signed=self.signed,
            suffix=suffix,
            max_pending=self.max_pending,
            outputs=tuple(self.writers),
        )


@dataclass(frozen=True)
class ExplainOptions:
    """How the CAM engine is set up.

    Args:
        target_layers (Sequence[str], optional): Module names; ``None``
            lets the resolver choose (it logs its choice and why). Defaults
            to None.
        num_extra_tokens (int, optional): Override the resolver's count of
            cls/dist tokens. Defaults to None.
        aug_smooth (bool): Average over flips x brightness (6 passes:
            slower). Defaults to False.
        eigen_smooth (bool): First principal component instead of channel
            sum. Defaults to False.
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
        cls (type): The dataclass to build.
        cfg (dict | cls, optional): ``None`` (defaults), an instance, or a
            dict of its fields.
        arg (str): Argument name, for the error message.

    Returns:
        cls: An instance of ``cls``.

    Raises:
        TypeError: ``cfg`` is neither ``None``, an instance nor a dict.
        KeyError: ``cfg`` has keys that are not fields of ``cls``.
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


def _is_int(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        or (
            hasattr(value, 'dtype')
            and getattr(value.dtype, 'kind', '') in 'iu'
        )
    )


def _check_count(arg: str, value: Any, least: int = 1) -> None:
    """An int >= ``least`` (bool and float refused)."""
    if not _is_int(value) or int(value) < least:
        raise ValueError(f'{arg} must be an int >= {least}, got {value!r}.')
