"""False-positive report: pairs, statistics, files, and a real test run."""

import csv
import json
from pathlib import Path

import pytest
from mmengine.runner import Runner

from mmcam_ext.fileio import center_energy, load_cams, read_index
from mmcam_ext.visualization import false_positive_pairs, write_report
from tests.helpers.runner import tiny_cfg


def _row(idx, gt, pred, score, method='GradCAM', kind='pred', energy=0.5):
    return dict(
        dataset_index=idx,
        gt=gt,
        pred=pred,
        score=score,
        misclassified=gt != pred,
        target_kind=kind,
        target=pred if kind == 'pred' else gt,
        method=method,
        blank=energy == 0,
        center_energy=energy,
        thumb='',
        input_thumb='',
        file='',
        input_file='',
    )


def test_pairs_sorted_by_count_with_statistics():
    rows = [
        _row(0, 0, 1, 0.9, energy=0.2),
        _row(0, 0, 1, 0.9, kind='gt', energy=0.6),
        _row(1, 0, 1, 0.7, energy=0.4),
        _row(1, 0, 1, 0.7, kind='gt', energy=0.8),
        _row(2, 2, 1, 0.6, energy=0.0),
        _row(2, 2, 1, 0.6, kind='gt', energy=0.1),
        _row(3, 1, 1, 0.99),  # correct: not in the report
        _row(4, 0, 1, 0.8, energy=0.3),
        _row(4, 0, 1, 0.8, kind='gt', energy=0.7),
    ]
    pairs = false_positive_pairs(rows)
    assert [(p['gt'], p['pred'], p['count']) for p in pairs] == [
        (0, 1, 3),
        (2, 1, 1),
    ]
    top = pairs[0]
    assert top['share'] == 0.75
    assert top['mean_score'] == pytest.approx(0.8)
    assert top['samples'] == [0, 4, 1]  # most confident first
    assert top['mean_center_energy'] == {
        'GradCAM/gt': pytest.approx(0.7),
        'GradCAM/pred': pytest.approx(0.3),
    }
    assert pairs[1]['blank_share'] == 0.5


def test_report_files(tmp_path):
    rows = [_row(i, i % 2, 2, 0.5 + i / 100) for i in range(6)]
    paths = write_report(tmp_path, rows, ['cat', 'dog', 'fox'])
    assert [p.name for p in paths] == [
        'false_positives.csv',
        'false_positives.json',
        'false_positives.html',
    ]
    with paths[0].open() as f:
        lines = list(csv.DictReader(f))
    assert [(r['gt_name'], r['pred_name'], r['count']) for r in lines] == [
        ('cat (0)', 'fox (2)', '3'),
        ('dog (1)', 'fox (2)', '3'),
    ]
    assert lines[0]['samples'] == '4 2 0'
    assert lines[0]['mean_center_energy_GradCAM_pred'] == '0.5'
    pairs = json.loads(paths[1].read_text())['pairs']
    assert pairs[1]['samples'] == [5, 3, 1]
    page = paths[2].read_text()
    assert page.index('cat (0) &rarr; fox (2)') < page.index('dog (1)')


def test_report_of_a_test_run(tmp_path):
    """The hook writes the report; its numbers follow from the dump."""
    hook = dict(
        type='CAMVisualizationHook',
        methods=['gradcam'],
        target='both',
        samples=dict(mode='all', misclassified_only=True),
        output=dict(save_raw=True, raw_dtype='float32'),
        phases='test',
    )
    runner = Runner.from_cfg(tiny_cfg(tmp_path, hook=hook))
    runner.test()
    (folder,) = Path(runner.work_dir, 'cam').iterdir()
    rows = read_index(folder)
    assert rows and all(r['misclassified'] for r in rows)
    pairs = json.loads((folder / 'false_positives.json').read_text())['pairs']
    assert sum(p['count'] for p in pairs) == len(
        {r['dataset_index'] for r in rows}
    )
    top = pairs[0]
    energies = [
        center_energy(cam)
        for row, cam in load_cams(folder, method='GradCAM', target='pred')
        if (row['gt'], row['pred']) == (top['gt'], top['pred'])
    ]
    assert top['mean_center_energy']['GradCAM/pred'] == pytest.approx(
        sum(energies) / len(energies), abs=1e-3
    )
    assert (folder / 'false_positives.html').read_text().count(
        '<section>'
    ) == len(pairs)
