"""vis_cam end to end: files, raw maps, errors, --preview-model.

The script ``tools/vis_cam.py`` in a subprocess, ``mmcam_ext.cli.vis_cam``
in process.
"""

import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmcam_ext.apis import CAMInferencer
from mmcam_ext.fileio import dump_files, load_cams

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'vis_cam.py')


def run_tool(*args, cwd):
    env = dict(os.environ, MPLBACKEND='Agg')
    return subprocess.run(
        [sys.executable, TOOL, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope='module')
def tool_module():
    from mmcam_ext.cli import vis_cam

    return vis_cam


@pytest.mark.slow
def test_cli_several_images_and_methods(small_setup, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img0_cam.png').write_bytes(b'a user file')  # must survive
    proc = run_tool(
        small_setup['img_dir'],
        small_setup['config'],
        small_setup['ckpt'],
        '--method',
        'gradcam',
        'GradCAM++',
        '--save-raw',
        '--out-dir',
        out,
        '--batch-size',
        '2',
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'Saved 3 CAM image(s)' in proc.stdout
    assert (out / 'img0_cam.png').read_bytes() == b'a user file'
    stems = ['img0_1', 'img1', 'img2']
    for stem in stems:
        assert (out / f'{stem}_cam.png').stat().st_size > 1000
    inferencer = CAMInferencer(
        small_setup['config'], pretrained=small_setup['ckpt']
    )
    results = inferencer(small_setup['img_dir'], ('gradcam', 'gradcam++'))
    # raw maps: one dump folder, a few arrays, read back by input number
    assert sorted(dump_files(out / 'raw')) == [
        'descriptors/GradCAMPlusPlus_top1.npy',
        'descriptors/GradCAM_top1.npy',
        'index.json',
        'index.sqlite',
        'maps/GradCAMPlusPlus_top1_64x64.npy',
        'maps/GradCAM_top1_64x64.npy',
    ]
    for i, (stem, res) in enumerate(zip(stems, results)):
        for method in ('GradCAM', 'GradCAMPlusPlus'):
            ((row, saved),) = load_cams(out / 'raw', i, method, 'top1')
            assert row['img_path'].endswith(f'img{i}.png')
            assert (out / 'raw' / row['file']).resolve() == (
                out / f'{stem}_cam.png'
            )
            assert row['target'] == int(res['targets'][0])
            np.testing.assert_allclose(
                saved, res['maps'][method][0], atol=2**-11
            )
    # a second run never touches the first one's files
    before = {p: p.read_bytes() for p in (out / 'raw').rglob('*.*')}
    proc = run_tool(
        small_setup['img_dir'],
        small_setup['config'],
        small_setup['ckpt'],
        '--save-raw',
        '--out-dir',
        out,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p: p.read_bytes() for p in (out / 'raw').rglob('*.*')} == before
    assert len(load_cams(out / 'raw_1')) == 3


def test_cli_wrong_layer_lists_close_matches(small_setup, tmp_path):
    proc = run_tool(
        osp.join(small_setup['img_dir'], 'img0.png'),
        small_setup['config'],
        small_setup['ckpt'],
        '--target-layers',
        'backbone.layer4.1.con2',
        '--out-dir',
        tmp_path,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert 'Close matches' in proc.stderr
    assert 'backbone.layer4.1.conv2' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_corrupt_image_is_a_clear_error(
    tool_module, small_setup, tmp_path, capsys
):
    bad = tmp_path / 'truncated.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    rc = tool_module.main(
        [
            str(bad),
            small_setup['config'],
            small_setup['ckpt'],
            '--out-dir',
            str(tmp_path / 'out'),
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert 'truncated.png' in err and 'Cannot read image' in err


def test_preview_model_prints_layer_names(tool_module, small_setup, capsys):
    rc = tool_module.main(
        [
            osp.join(small_setup['img_dir'], 'img0.png'),
            small_setup['config'],
            small_setup['ckpt'],
            '--preview-model',
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert '\nbackbone.layer4.1.conv2\n' in out


def test_save_path_single_image_never_overwrites(
    tool_module, small_setup, tmp_path, capsys
):
    img = osp.join(small_setup['img_dir'], 'img1.png')
    target = tmp_path / 'cam.png'
    argv = [
        img,
        small_setup['config'],
        small_setup['ckpt'],
        '--save-path',
        str(target),
        '--target-category',
        '5',
    ]
    assert tool_module.main(argv) == 0
    first = target.read_bytes()
    assert str(target) in capsys.readouterr().out
    assert tool_module.main(argv) != 0  # exists: refused
    assert 'exists' in capsys.readouterr().err
    assert target.read_bytes() == first
    assert (
        tool_module.main(argv + ['--target-category', '7', '--overwrite']) == 0
    )
    assert target.read_bytes() != first


def test_save_path_raw_dump_is_never_overwritten(
    tool_module, small_setup, tmp_path, capsys
):
    img = osp.join(small_setup['img_dir'], 'img1.png')
    target = tmp_path / 'cam.png'
    argv = [
        img,
        small_setup['config'],
        small_setup['ckpt'],
        '--save-path',
        str(target),
        '--save-raw',
        '--target-category',
        '5',
        '9',
    ]
    assert tool_module.main(argv) == 0
    rows = load_cams(tmp_path / 'cam_raw', 0)
    assert [(r['target_kind'], r['target']) for r, _ in rows] == [
        ('category1', 5),
        ('category2', 9),
    ]
    target.unlink()  # the PNG is gone, but the raw dump still exists
    assert tool_module.main(argv) != 0
    assert 'cam_raw exists' in capsys.readouterr().err
    assert not target.exists()
