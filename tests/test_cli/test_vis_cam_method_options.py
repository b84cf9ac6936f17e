"""``--method-options``: method options reach the constructors via the CLI."""

import numpy as np
import pytest

from mmcam_ext.apis import CAMInferencer
from mmcam_ext.cli import vis_cam
from mmcam_ext.fileio import load_cam


def _run(setup, out, *extra):
    return vis_cam.main(
        [
            setup['img_dir'],
            setup['config'],
            setup['ckpt'],
            '--out-dir',
            str(out),
            '--save-raw',
            *extra,
        ]
    )


@pytest.mark.slow
def test_method_options_reach_the_constructor(small_setup, tmp_path):
    rc = _run(
        small_setup,
        tmp_path,
        '--method',
        'scorecam',
        '--method-options',
        'scorecam.top_k_channels=4',
        'ScoreCAM.mask_batch_size=8',
    )
    assert rc == 0
    inferencer = CAMInferencer(
        small_setup['config'], pretrained=small_setup['ckpt']
    )
    pruned = inferencer(
        small_setup['img_dir'],
        [dict(type='ScoreCAM', top_k_channels=4, mask_batch_size=8)],
    )
    full = inferencer(small_setup['img_dir'], ['scorecam'])
    saved = load_cam(tmp_path / 'raw', 0, 'ScoreCAM', 'top1')
    np.testing.assert_allclose(
        saved, pruned[0]['maps']['ScoreCAM'][0], atol=2**-11
    )
    assert np.abs(saved - full[0]['maps']['ScoreCAM'][0]).max() > 1e-3


@pytest.mark.parametrize(
    'options,message',
    [
        (['scorecam.top_k=4'], 'mask_batch_size, top_k_channels'),
        (['rollout.head_fusion=max'], 'not among the methods'),
        (['gradcam.eps=1'], 'GradCAM takes no options'),
        (['head_fusion=max'], 'method.option=value'),
    ],
)
def test_bad_method_options_are_clear_errors(
    small_setup, tmp_path, capsys, options, message
):
    rc = _run(
        small_setup,
        tmp_path,
        '--method',
        'gradcam',
        'scorecam',
        '--method-options',
        *options,
    )
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob('*.png'))
