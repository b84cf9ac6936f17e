"""vis_cam's whole-image and multi-scale flags, in process."""

import mmcv
import numpy as np
import pytest

from mmcam_ext.apis import CAMInferencer
from mmcam_ext.apis.views import ViewOptions
from mmcam_ext.cli import vis_cam
from mmcam_ext.fileio import load_cams

SHAPES = [(70, 90), (96, 80), (80, 80)]  # the photos of small_setup


def _main(small_setup, *flags):
    return vis_cam.main(
        [
            small_setup['img_dir'],
            small_setup['config'],
            small_setup['ckpt'],
            *map(str, flags),
        ]
    )


def test_whole_image_maps_on_each_photo(small_setup, tmp_path):
    out = tmp_path / 'out'
    code = _main(
        small_setup,
        '--whole-image',
        '--scales',
        '1',
        '2',
        '--save-raw',
        '--out-dir',
        out,
    )
    assert code == 0
    reference = CAMInferencer(
        small_setup['config'],
        pretrained=small_setup['ckpt'],
        view=ViewOptions(whole_image=True, scales=(1, 2)),
    )(small_setup['img_dir'])
    for i, (shape, res) in enumerate(zip(SHAPES, reference)):
        ((row, saved),) = load_cams(out / 'raw', i, 'GradCAM')
        assert saved.shape == shape
        np.testing.assert_allclose(
            saved, res['maps']['GradCAM'][0], atol=2**-11
        )
        grid = mmcv.imread(str(out / f'img{i}_cam.png'))
        assert grid.shape[0] >= shape[0]  # drawn at the photo's size


def test_tile_flags_reach_the_views(small_setup, tmp_path):
    out = tmp_path / 'out'
    flags = ['--whole-image', '--scales', '1', '4', '--tile-size', '128']
    args = vis_cam.parse_args(
        ['a.png', 'c.py', 'w.pth', *flags, '--tile-overlap', '64']
    )
    view = vis_cam.view_options(args)
    assert (view.tile_size, view.overlap) == (128, 64)
    code = _main(small_setup, *flags, '--save-raw', '--out-dir', out)
    assert code == 0
    reference = CAMInferencer(
        small_setup['config'],
        pretrained=small_setup['ckpt'],
        view=ViewOptions(whole_image=True, scales=(1, 4), tile_size=128),
    )(small_setup['img_dir'])
    for i, res in enumerate(reference):
        assert 'tiles' not in res  # tiles stay inside the views
        ((row, saved),) = load_cams(out / 'raw', i, 'GradCAM')
        np.testing.assert_allclose(
            saved, res['maps']['GradCAM'][0], atol=2**-11
        )


def test_drawn_image_marks_the_view_box():
    image = np.zeros((40, 50, 3), np.uint8)
    res = dict(image=image, view_box=(10, 5, 30, 25))
    drawn = vis_cam.drawn_image(res)
    assert drawn is not image and image.max() == 0
    assert (drawn[5, 10:30] == vis_cam.BOX_COLOR).all()
    assert (drawn[24, 10:30] == vis_cam.BOX_COLOR).all()
    assert drawn[10:20, 12:28].max() == 0 and drawn[:4].max() == 0
    assert vis_cam.drawn_image(dict(image=image, view_box=None)) is image


@pytest.mark.parametrize(
    'flags,message',
    [
        (['--input-size', '96'], '--input-size applies with --whole-image'),
        (['--draw-on', 'input', '--scales', '1', '2'], '--draw-on'),
        (['--whole-image', '--tile-overlap', '16'], '--tile-overlap'),
        (
            ['--whole-image', '--scales', '4', '1', '--tile-size', '128'],
            'raise --tile-size or put a smaller scale first',
        ),
    ],
)
def test_view_flag_mistakes(small_setup, tmp_path, capsys, flags, message):
    code = _main(small_setup, '--out-dir', tmp_path / 'o', *flags)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('value', ['0', '-1', 'nan', 'two'])
def test_bad_scale_is_a_usage_error(small_setup, capsys, value):
    with pytest.raises(SystemExit) as info:
        _main(small_setup, '--scales', '1', value)
    assert info.value.code == 2
    assert '--scales' in capsys.readouterr().err
