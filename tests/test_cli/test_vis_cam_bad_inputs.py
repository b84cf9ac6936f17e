"""Bad inputs through ``tools/vis_cam.py``: exit code 2 and one clear line.

Each row of the main table is a command line a careless user might type,
the expected exit code and a fragment of the message. Every row also checks
that stderr has no traceback and at most two lines, that no output folder
was created and that no file of the user's changed or vanished. Most rows
call :func:`mmcam_ext.cli.vis_cam.main` in process; a few run the script in
a subprocess to prove the same end to end. Runs that succeed with warnings
(skipped files, blank maps, a partial checkpoint) are checked below.
"""

import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

from mmcam_ext.cli import vis_cam
from mmcam_ext.cli.messages import cli_message
from mmcam_ext.errors import InputError, LayoutError
from tests.helpers.bad_inputs import make_bad_inputs, tree_digest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'vis_cam.py')


@pytest.fixture(scope='module')
def p(tmp_path_factory):
    return make_bad_inputs(str(tmp_path_factory.mktemp('bad_cli')))


def _std(p):
    """IMG CONFIG CHECKPOINT of a run that would work."""
    return [p['image'], p['config'], p['ckpt']]


def _file(tmp, name='user.txt', text='a user file'):
    path = osp.join(tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


# (id, argv(p, out, tmp), exit code, fragment of stderr)
CASES = [
    (
        'config missing',
        lambda p, o, t: [p['image'], 'nope.py', p['ckpt'], '--out-dir', o],
        2,
        "Config file 'nope.py' does not exist",
    ),
    (
        'config and checkpoint swapped',
        lambda p, o, t: [p['image'], p['ckpt'], p['config'], '--out-dir', o],
        2,
        'is it the checkpoint',
    ),
    (
        'config syntax error',
        lambda p, o, t: [
            p['image'],
            p['config_syntax'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'Cannot read config',
    ),
    (
        'config without test pipeline',
        lambda p, o, t: [
            p['image'],
            p['config_no_test'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'no test_dataloader.dataset.pipeline',
    ),
    (
        'self-supervised config',
        lambda p, o, t: [
            p['image'],
            p['config_ssl'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'not a classifier',
    ),
    (
        'text file as checkpoint',
        lambda p, o, t: [
            p['image'],
            p['config'],
            p['text_ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'not a readable PyTorch checkpoint',
    ),
    (
        'checkpoint is a folder',
        lambda p, o, t: [
            p['image'],
            p['config'],
            p['dir_ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'is a directory',
    ),
    (
        'checkpoint missing',
        lambda p, o, t: [p['image'], p['config'], 'nope.pth', '--out-dir', o],
        2,
        'does not exist',
    ),
    (
        'checkpoint of another architecture',
        lambda p, o, t: [
            p['image'],
            p['config'],
            p['other_ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'file key(s) not in the model (backbone.cls_token',
    ),
    (
        'head resized by --cfg-options',
        lambda p, o, t: (
            _std(p)
            + ['--out-dir', o, '--cfg-options', 'model.head.num_classes=3']
        ),
        2,
        'head.fc.weight: file (10, 64), model (3, 64)',
    ),
    (
        '--cfg-options without =',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--cfg-options', 'foo'],
        2,
        'expected KEY=VALUE pairs',
    ),
    (
        '--cfg-options typo',
        lambda p, o, t: (
            _std(p)
            + ['--out-dir', o, '--cfg-options', 'model.head.num_clases=3']
        ),
        2,
        "unexpected keyword argument 'num_clases'",
    ),
    (
        '--cfg-options typo warns first',
        lambda p, o, t: (
            _std(p)
            + ['--out-dir', o, '--cfg-options', 'model.head.num_clases=3']
        ),
        2,
        'vis_cam.py: warning: --cfg-options add key(s) the config does not '
        'have: model.head.num_clases (a typo?)',
    ),
    (
        '--out-dir under /proc',
        lambda p, o, t: _std(p) + ['--out-dir', '/proc/mmcam_out'],
        2,
        "--out-dir '/proc/mmcam_out' is not writable",
    ),
    (
        '--out-dir is a file',
        lambda p, o, t: _std(p) + ['--out-dir', _file(t)],
        2,
        'is a file, not a folder',
    ),
    (
        '--out-dir under a file',
        lambda p, o, t: _std(p) + ['--out-dir', osp.join(_file(t), 'sub')],
        2,
        'is a file',
    ),
    (
        '--save-path .txt',
        lambda p, o, t: _std(p) + ['--save-path', osp.join(o, 'out.txt')],
        2,
        "no image writer for '.txt'",
    ),
    (
        '--save-path is a folder',
        lambda p, o, t: _std(p) + ['--save-path', t],
        2,
        'is a folder',
    ),
    (
        '--save-path and --out-dir',
        lambda p, o, t: (
            _std(p) + ['--save-path', osp.join(o, 'a.png'), '--out-dir', o]
        ),
        2,
        'exclude each other',
    ),
    (
        '--save-path with a folder',
        lambda p, o, t: [
            p['images'],
            p['config'],
            p['ckpt'],
            '--save-path',
            osp.join(o, 'a.png'),
        ],
        2,
        '--save-path takes one image',
    ),
    (
        '--save-path is the input',
        lambda p, o, t: _std(p) + ['--save-path', p['image'], '--overwrite'],
        2,
        'would overwrite the input image',
    ),
    pytest.param(
        '--device cuda without GPU',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--device', 'cuda'],
        2,
        "--device 'cuda' is not usable",
        marks=pytest.mark.skipif(
            torch.cuda.is_available(), reason='has a GPU'
        ),
    ),
    (
        '--device gpu',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--device', 'gpu'],
        2,
        "--device 'gpu' is not a name torch knows",
    ),
    (
        '--target-layers neck (tuple)',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--target-layers', 'neck'],
        2,
        'returns a tuple',
    ),
    (
        '--target-layers neck.gap (1x1)',
        lambda p, o, t: (
            _std(p) + ['--out-dir', o, '--target-layers', 'neck.gap']
        ),
        2,
        'neither is a spatial map of this 64x64 input',
    ),
    (
        '--target-layers head.fc',
        lambda p, o, t: (
            _std(p) + ['--out-dir', o, '--target-layers', 'head.fc']
        ),
        2,
        'neither a (B, C, H, W) map',
    ),
    (
        '--target-layers typo',
        lambda p, o, t: (
            _std(p)
            + ['--out-dir', o, '--target-layers', 'backbone.layer4.1.con2']
        ),
        2,
        'Close matches: backbone.layer4.1.conv2',
    ),
    (
        '--target-category huge',
        lambda p, o, t: (
            _std(p)
            + ['--out-dir', o, '--target-category', '99999999999999999999']
        ),
        2,
        'Target class 99999999999999999999 is out of range',
    ),
    (
        '--target-category beyond the head',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--target-category', '10'],
        2,
        '[0, 9]',
    ),
    (
        '--target-category negative',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--target-category', '-1'],
        2,
        'out of range',
    ),
    (
        '--target-category float',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--target-category', '3.7'],
        2,
        "'3.7' is not a class index (an integer) or a class name",
    ),
    (
        '--target-category misspelt name',
        lambda p, o, t: (
            _std(p) + ['--out-dir', o, '--target-category', 'goldfsh']
        ),
        2,
        "Target class 'goldfsh' is not a class of this model (close "
        'matches: goldfish',
    ),
    (
        '--topk 0',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--topk', '0'],
        2,
        'argument --topk: must be >= 1',
    ),
    (
        '--topk beyond classes',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--topk', '11'],
        2,
        '--topk must be an integer in [1, 10]',
    ),
    (
        '--batch-size 0',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--batch-size', '0'],
        2,
        'must be >= 1',
    ),
    (
        '--num-workers -1',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--num-workers', '-1'],
        2,
        'must be >= 0',
    ),
    (
        '--num-extra-tokens -1',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--num-extra-tokens', '-1'],
        2,
        'must be >= 0',
    ),
    (
        '--method unknown',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--method', 'gradcamm'],
        2,
        "Unknown CAM method 'gradcamm'",
    ),
    (
        '--method with commas',
        lambda p, o, t: (
            _std(p) + ['--out-dir', o, '--method', 'gradcam,layercam']
        ),
        2,
        'a comma does not separate methods; give the 2 names (gradcam '
        'layercam) each on its own',
    ),
    (
        'image given as a URL',
        lambda p, o, t: [
            'https://example.com/cat.jpg',
            p['config'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'is a URL: only local files',
    ),
    (
        '--method twice',
        lambda p, o, t: (
            _std(p) + ['--out-dir', o, '--method', 'gradcam', 'Grad-CAM']
        ),
        2,
        '--method lists GradCAM twice',
    ),
    (
        '--max-image-pixels 0',
        lambda p, o, t: _std(p) + ['--out-dir', o, '--max-image-pixels', '0'],
        2,
        'must be >= 1',
    ),
    (
        'unknown flag',
        lambda p, o, t: _std(p) + ['--out-dri', o],
        2,
        'unrecognized arguments',
    ),
    (
        'image missing',
        lambda p, o, t: ['nope.png', p['config'], p['ckpt'], '--out-dir', o],
        2,
        "Image file 'nope.png' does not exist",
    ),
    (
        'empty folder',
        lambda p, o, t: [p['empty'], p['config'], p['ckpt'], '--out-dir', o],
        2,
        'No image files',
    ),
    (
        'only ._ files',
        lambda p, o, t: [
            p['hidden_only'],
            p['config'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'hidden files are skipped',
    ),
    (
        'folder named like an image',
        lambda p, o, t: [
            osp.join(p['mixed'], 'folder.png'),
            p['config'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'No image files',
    ),
    (
        'glob without match',
        lambda p, o, t: [
            osp.join(p['root'], '*.webp'),
            p['config'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        'matches no image file',
    ),
    (
        'symlink loop',
        lambda p, o, t: [p['loop'], p['config'], p['ckpt'], '--out-dir', o],
        2,
        'broken symbolic link',
    ),
    (
        'one unreadable image',
        lambda p, o, t: [
            osp.join(p['mixed'], 'bad.jpg'),
            p['config'],
            p['ckpt'],
            '--out-dir',
            o,
        ],
        2,
        "Cannot read image '",
    ),
    (
        '20000x20000 PNG of 0.4 MB',
        lambda p, o, t: [p['huge'], p['config'], p['ckpt'], '--out-dir', o],
        2,
        'above the limit of 100.0 (--max-image-pixels=100000000)',
    ),
    (
        'model input above the limit',
        lambda p, o, t: [
            p['big'],
            p['config_no_resize'],
            p['ckpt'],
            '--out-dir',
            o,
            '--max-input-pixels',
            '100000',
        ],
        2,
        'After the test pipeline, ',
    ),
]


def _ids(case):
    return case.values[0] if hasattr(case, 'values') else case[0]


def _check_clean_failure(err: str, out: str, before, p) -> None:
    assert 'Traceback' not in err
    lines = err.strip().splitlines()
    # Warnings that explain the error (an override that adds a key) come
    # first, each on one line; then the error's one or two lines.
    while lines and lines[0].startswith('vis_cam.py: warning: '):
        lines.pop(0)
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith('vis_cam.py: error: '), lines
    assert not osp.exists(out), 'output folder created before the error'
    assert tree_digest(p['root']) == before, 'a user file changed'


def _main(args):
    """``main``'s exit code, also for argparse's usage errors (SystemExit)."""
    try:
        return vis_cam.main(args)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize(
    'name, argv, code, fragment', CASES, ids=[_ids(c) for c in CASES]
)
def test_bad_input_exits_2_with_one_line(
    p, tmp_path, capsys, name, argv, code, fragment
):
    out = str(tmp_path / 'out')
    args = [str(a) for a in argv(p, out, str(tmp_path))]
    user_files = tree_digest(str(tmp_path))
    before = tree_digest(p['root'])
    rc = _main(args)
    err = capsys.readouterr().err
    assert rc == code, err
    assert fragment in err, err
    _check_clean_failure(err, out, before, p)
    assert tree_digest(str(tmp_path)) == user_files


def test_show_without_display_fails_fast(p, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    out = str(tmp_path / 'out')
    start = time.perf_counter()
    rc = vis_cam.main(_std(p) + ['--out-dir', out, '--show'])
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert rc == 2 and 'needs a display' in err
    _check_clean_failure(err, out, tree_digest(p['root']), p)
    monkeypatch.setenv('DISPLAY', ':99')  # a display, but the Agg backend
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    rc = vis_cam.main(_std(p) + ['--out-dir', out, '--show'])
    err = capsys.readouterr().err
    assert rc == 2 and 'interactive matplotlib backend' in err
    assert not osp.exists(out)


def test_read_only_out_dir_and_failed_write(p, tmp_path, capsys, monkeypatch):
    # As root every folder is writable, so the refusal is simulated where
    # the check tries to create its probe file.
    from mmcam_ext.cli import checks

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(checks.tempfile, 'NamedTemporaryFile', refuse)
    out = str(tmp_path / 'out')
    assert vis_cam.main(_std(p) + ['--out-dir', out]) == 2
    err = capsys.readouterr().err
    assert 'is not writable' in err and 'Traceback' not in err
    monkeypatch.undo()
    import mmcv

    monkeypatch.setattr(mmcv, 'imwrite', lambda *a, **k: False)  # disk full
    assert vis_cam.main(_std(p) + ['--out-dir', out]) == 2
    err = capsys.readouterr().err
    assert "Cannot write '" in err and 'img0_cam.png' in err
    assert os.listdir(out) == []


# ----------------------------------------------------------------------
# Runs that finish: correct output plus a warning.


def _run(p, argv, capsys):
    rc = vis_cam.main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert 'Traceback' not in cap.err
    return rc, cap.out, cap.err


@pytest.mark.parametrize('skip_flag', [False, True])
def test_folder_with_a_bad_file_skips_it_and_says_so(
    p, tmp_path, capsys, skip_flag
):
    out = tmp_path / 'out'
    argv = [p['mixed'], p['config'], p['ckpt'], '--out-dir', out]
    rc, stdout, err = _run(
        p, argv + (['--skip-bad-images'] if skip_flag else []), capsys
    )
    assert rc == (0 if skip_flag else vis_cam.EXIT_SKIPPED)
    assert "skipped: Cannot read image '" in err and 'bad.jpg' in err
    assert '3 image(s) explained, 1 skipped' in err
    written = sorted(os.listdir(out))
    # ._good.png, .hidden.png, notes.txt and the folder.png/ are not inputs.
    assert written == ['good_cam.png', 'photo1_cam.png', 'photo[1]_cam.png']


def test_literal_bracket_name_and_gif_folder(p, tmp_path, capsys):
    out = tmp_path / 'out'
    literal = osp.join(p['mixed'], 'photo[1].png')
    rc, _, _ = _run(
        p, [literal, p['config'], p['ckpt'], '--out-dir', out], capsys
    )
    assert rc == 0 and os.listdir(out) == ['photo[1]_cam.png']
    rc, stdout, _ = _run(
        p,
        [p['gifs'], p['config'], p['ckpt'], '--out-dir', tmp_path / 'g'],
        capsys,
    )
    assert rc == 0 and 'Saved 2 CAM image(s)' in stdout


def test_unicode_paths_and_duplicate_names(p, tmp_path, capsys):
    out = tmp_path / 'sortie é'
    two = [osp.join(p['two/a'], 'same.png'), osp.join(p['two/b'], 'same.png')]
    rc, _, _ = _run(
        p,
        [p['unicode_image'], *two, p['config'], p['ckpt'], '--out-dir', out],
        capsys,
    )
    assert rc == 0
    assert sorted(os.listdir(out)) == [
        'chat noir é_cam.png',
        'same_1_cam.png',
        'same_cam.png',
    ]


def test_blank_map_is_written_with_a_warning(p, tmp_path, capsys):
    out = tmp_path / 'out'
    rc, _, err = _run(
        p,
        [
            p['image'],
            p['config'],
            p['blank_ckpt'],
            '--out-dir',
            out,
            '--target-category',
            '0',
            '--method',
            'gradcam',
            'eigencam',
        ],
        capsys,
    )
    assert rc == 0 and (out / 'img0_cam.png').exists()
    assert 'GradCAM for class' in err and 'zero everywhere' in err
    assert 'EigenCAM' not in err  # that map is not blank
    assert '--signed' in err and '--target-layers' in err
    rc, _, err = _run(
        p,
        [
            p['image'],
            p['config'],
            p['blank_ckpt'],
            '--out-dir',
            out,
            '--target-category',
            '1',
        ],
        capsys,
    )
    assert rc == 0 and 'zero everywhere' not in err
    signed = tmp_path / 'signed'
    rc, _, _ = _run(
        p,
        [
            p['image'],
            p['config'],
            p['blank_ckpt'],
            '--out-dir',
            signed,
            '--target-category',
            '0',
            '--signed',
        ],
        capsys,
    )
    assert rc == 0 and (signed / 'img0_cam.png').stat().st_size > 1000


def test_target_category_by_name_draws_what_the_index_draws(
    p, tmp_path, capsys
):
    grids = {}
    for label, category in (
        ('index', ['1', '0']),
        ('name', ['Goldfish', 'tench']),
    ):
        out = tmp_path / label
        rc, _, err = _run(
            p,
            [p['image'], p['config'], p['ckpt'], '--out-dir', out]
            + ['--target-category', *category],
            capsys,
        )
        assert rc == 0, err
        grids[label] = (out / 'img0_cam.png').read_bytes()
    assert grids['name'] == grids['index']


def test_partial_checkpoint_needs_the_flag_and_warns(p, tmp_path, capsys):
    out = tmp_path / 'out'
    rc, stdout, err = _run(
        p,
        [
            p['image'],
            p['config'],
            p['other_ckpt'],
            '--out-dir',
            out,
            '--allow-partial-checkpoint',
        ],
        capsys,
    )
    assert rc == 0 and (out / 'img0_cam.png').exists()
    (line,) = [ln for ln in err.splitlines() if 'does not fit' in ln]
    assert line.startswith('vis_cam.py: warning: ')
    assert 'does not fit ImageClassifier' in line
    assert 'Loaded the matching part only (--allow-partial-checkpoint)' in line
    assert 'strict=False' not in err and 'does not fit' not in stdout


def test_messages_use_flags_only_where_meant():
    err = LayoutError(
        'pass target_layers (layer names: '
        'model.named_modules()); see max_input_pixels=5.'
    )
    assert cli_message(err) == (
        'pass --target-layers (layer names: --preview-model); see '
        '--max-input-pixels=5.'
    )
    word = InputError('other methods; methods is empty.')
    assert cli_message(word) == 'other methods; methods is empty.'
    about = InputError('other methods; methods is empty.', option='methods')
    assert cli_message(about) == 'other --method; --method is empty.'


# ----------------------------------------------------------------------
# End to end in a subprocess: no traceback on stderr, exit codes as above.


def _tool(*args, cwd, env=None):
    env = dict(os.environ if env is None else env, MPLBACKEND='Agg')
    return subprocess.run(
        [sys.executable, TOOL, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    'row',
    [
        'config missing',
        'text file as checkpoint',
        '--target-layers neck.gap (1x1)',
        '--cfg-options without =',
    ],
)
def test_subprocess_errors_have_no_traceback(p, tmp_path, row):
    _, argv, code, fragment = next(c for c in CASES if _ids(c) == row)
    out = str(tmp_path / 'out')
    proc = _tool(*argv(p, out, str(tmp_path)), cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert fragment in proc.stderr
    _check_clean_failure(proc.stderr, out, tree_digest(p['root']), p)


@pytest.mark.slow
def test_subprocess_workers_and_show(p, tmp_path):
    out = tmp_path / 'out'
    proc = _tool(
        p['mixed'],
        p['config'],
        p['ckpt'],
        '--out-dir',
        out,
        '--num-workers',
        '2',
        cwd=tmp_path,
    )
    assert proc.returncode == vis_cam.EXIT_SKIPPED, proc.stderr
    assert 'Traceback' not in proc.stderr and 'bad.jpg' in proc.stderr
    assert len(os.listdir(out)) == 3
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('DISPLAY', 'WAYLAND_DISPLAY')
    }
    proc = _tool(
        *_std(p), '--out-dir', tmp_path / 's', '--show', cwd=tmp_path, env=env
    )  # would block forever before
    assert proc.returncode == 2 and 'needs a display' in proc.stderr
    assert proc.stderr.count('\n') == 1
