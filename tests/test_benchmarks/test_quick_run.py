"""The benchmark's quick mode on tiny settings: every row has a number."""

import math
import os

import pytest

from benchmarks import SECTIONS, QualityCase, quick_settings, run_benchmark
from benchmarks.hook_overhead import HookCase
from benchmarks.quality import CNN_METHODS, VIT_METHODS

pytestmark = pytest.mark.slow  # runs whole tools and trains

TINY_DATA = {'shapes_data.train_per_class': 4, 'shapes_data.val_per_class': 2}


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    work = str(tmp_path_factory.mktemp('bench'))
    settings = quick_settings(
        work_dir=work,
        speed_models=('resnet18-64', 'deit-tiny-64'),
        batches=(1, 2),
        repeats=1,
        memory_models=('resnet18-64',),
        folder_models=('resnet18-64',),
        folder_sizes=(2,),
        mm_runs=1,
        hook=HookCase('resnet18_8xb32_in1k', 32, 3, 2),
        scale_models=('resnet18-64',),
        scale_images=6,
        scale_batch=3,
        scale_folder_model='resnet18-64',
        scale_folder_size=3,
        scale_repeats=1,
        testset_models=('deit-tiny-96', 'resnet18-64-gradcam'),
        testset_images={'deit-tiny-96': 3, 'resnet18-64-gradcam': 3},
        testset_repeats=1,
        quality_cases=(
            QualityCase('cnn', (32, 32), 1, TINY_DATA),
            QualityCase('vit', (32, 32), 1, TINY_DATA),
        ),
        quality_limit=4,
        quality_steps=2,
    )
    rep = run_benchmark(settings)
    rep.plot(os.path.join(work, 'plot.png'))
    assert os.path.getsize(os.path.join(work, 'plot.png')) > 0
    return rep


def test_every_speed_row_is_measured(report):
    sections = {r.section for r in report.rows}
    expected = {
        'floor ratio',
        '6-method grid',
        'EigenCAM / GradCAM',
        'peak memory / floor',
        'held after call',
        'import time',
        'folder throughput',
        'time to first map',
        'hook per sample / standalone',
        '(a) hook, every sample / test without',
        '(b) hook, misclassified only / test without',
        '(c) tool on a folder / plain inference',
        '(d) files per evaluation',
        'hook, every sample / test without',
        'hook extra / activation-backward floor',
    }
    assert expected <= sections
    for row in report.rows:
        assert row.value is not None and math.isfinite(row.value), row
    targets = [r for r in report.rows if r.target]
    assert all(r.met in (True, False) for r in targets)
    floor = [r.name for r in report.rows if r.section == 'floor ratio']
    assert len(floor) == 2 * 2 * 2  # models x batches x (ours, pgc)


def test_every_quality_row_is_scored(report):
    for arch, methods in (('ResNet', CNN_METHODS), ('ViT', VIT_METHODS)):
        rows = [q for q in report.quality if q.model.startswith(arch)]
        assert [q.method for q in rows][1:] == list(methods)
        for q in rows:
            for value in (q.pointing, q.energy, q.deletion, q.insertion):
                assert 0 <= value <= 1, q


def test_markdown_has_all_sections(report):
    md = report.markdown()
    assert '| floor ratio | ResNet-18@64 b2 ours |' in md
    assert '## Localisation and faithfulness' in md
    assert md.count('\n| ') > len(report.rows) + len(report.quality)
    assert set(SECTIONS) == {
        'speed',
        'memory',
        'folder',
        'hook',
        'scale',
        'dumps',
        'testset',
        'quality',
    }
    assert '| dump writer memory | 2,000 samples, save_raw |' in md
    assert '| (d) files per evaluation | ResNet-18@64, 6 samples' in md
