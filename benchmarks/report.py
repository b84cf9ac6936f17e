"""Rows, tables and the plot of the benchmark report."""

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from mmengine.logging import print_log

from .quality import QualityRow

__all__ = ['Row', 'Report', 'fmt', 'bench_logger']


def fmt(value: Optional[float], digits: int = 2, unit: str = '') -> str:
    """A number for a table; ``n/a`` for ``None`` or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.{digits}f}{unit}'


@dataclass
class Row:
    """One measured figure, with its target when one is set.

    Args:
        section: Group, e.g. ``'floor ratio'``.
        name: What was measured (model, batch...).
        value: The figure the target is checked on (``None``: not measured).
        shown: How the figure is printed (with context).
        target: The target as text, ``''`` when there is none.
        met: Whether the target is met (``None``: no target).
    """

    section: str
    name: str
    value: Optional[float]
    shown: str
    target: str = ''
    met: Optional[bool] = None


@dataclass
class Report:
    """Everything one benchmark run measured."""

    rows: List[Row] = field(default_factory=list)
    quality: List[QualityRow] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    header: str = ''

    def add(
        self,
        section: str,
        name: str,
        value: Optional[float],
        shown: str,
        target: str = '',
        ok: Optional[bool] = None,
    ) -> None:
        """Record a row and log it at once (a full run takes a while)."""
        self.rows.append(Row(section, name, value, shown, target, ok))
        print_log(
            f'[benchmark] {section} | {name} | {shown} | {target}',
            logger=bench_logger(),
        )

    # ------------------------------------------------------------ text
    def speed_table(self) -> str:
        lines = [
            '| Section | Measurement | Measured | Target | Met |',
            '|---|---|---|---|---|',
        ]
        for r in self.rows:
            met = '' if r.met is None else ('yes' if r.met else '**no**')
            lines.append(
                f'| {r.section} | {r.name} | {r.shown} | {r.target} | {met} |'
            )
        return '\n'.join(lines)

    def quality_table(self) -> str:
        lines = [
            '| Model | Method | Pointing game | Energy in box (chance) | '
            'Deletion AUC (lower better) | Insertion AUC (higher better) | '
            'ms / image | Images |',
            '|---|---|---|---|---|---|---|---|',
        ]
        for q in self.quality:
            lines.append(
                f'| {q.model} | {q.method} | {q.pointing:.2f} | '
                f'{q.energy:.2f} ({q.chance_energy:.2f}) | {q.deletion:.3f} '
                f'| {q.insertion:.3f} | {q.ms_per_image:.1f} | {q.num} |'
            )
        return '\n'.join(lines)

    def markdown(self) -> str:
        parts = [self.header, '## Speed and memory', '', self.speed_table()]
        if self.quality:
            parts += [
                '',
                '## Localisation and faithfulness',
                '',
                self.quality_table(),
            ]
        if self.notes:
            parts += ['', '## Notes', ''] + [f'- {n}' for n in self.notes]
        return '\n'.join(parts) + '\n'

    # ------------------------------------------------------------ plot
    def plot(self, path: str) -> None:
        """Floor ratios (ours vs pytorch-grad-cam) and energy in box."""
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        ratios = [r for r in self.rows if r.section == 'floor ratio']
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        _bars(
            axes[0],
            [r.name for r in ratios],
            [r.value or 0 for r in ratios],
            'time / floor',
            'GradCAM time / floor (1 = forward + backward to the layer)',
            line=1.15,
        )
        models = sorted({q.model for q in self.quality})
        for model in models:
            qs = [q for q in self.quality if q.model == model]
            axes[1].plot(
                [q.method for q in qs],
                [q.energy for q in qs],
                marker='o',
                label=model,
            )
        axes[1].set_title('Energy in box (shapes, ground-truth class)')
        axes[1].tick_params(axis='x', rotation=70)
        if models:
            axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def bench_logger():
    """The benchmark's own INFO logger (the shapes Runners make a
    WARNING-level logger MMEngine's current one)."""
    from mmengine.logging import MMLogger

    if MMLogger.check_instance_created('mmcam_ext_benchmark'):
        return MMLogger.get_instance('mmcam_ext_benchmark')
    return MMLogger.get_instance('mmcam_ext_benchmark', log_level='INFO')


def _bars(
    ax,
    names: Sequence[str],
    values: Sequence[float],
    ylabel: str,
    title: str,
    line: Optional[float] = None,
) -> None:
    colors = ['tab:blue' if 'ours' in n else 'tab:orange' for n in names]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(names, rotation=70, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if line is not None:
        ax.axhline(line, color='k', ls='--', lw=0.8)
