"""Every entry point hides mmcv-lite's MultiScaleDeformableAttention
warning, and only that one."""

import importlib
import warnings

import pytest

from mmcam_ext.cli.messages import MMCV_LITE_WARNING

ENTRY_POINTS = [
    ('mmcam_ext.__main__', []),
    ('mmcam_ext.cli.vis_cam', ['--help']),
    ('mmcam_ext.cli.find_patterns', ['--help']),
    ('mmcam_ext.cli.mine_negatives', ['--help']),
    ('mmcam_ext.cli.dump', ['--help']),
    ('mmcam_ext.cli.demo', ['--help']),
    ('mmcam_ext.cli.dist_launch', ['--help']),
]


@pytest.mark.parametrize('module, argv', ENTRY_POINTS)
def test_only_the_known_warning_is_hidden(module, argv, capsys):
    main = importlib.import_module(module).main
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            main(argv)
        except SystemExit:
            pass
        # what mmcv-lite says when the model registry imports it
        warnings.warn(
            MMCV_LITE_WARNING + ' from ``mmcv.ops.multi_scale_deform_attn``',
            UserWarning,
            stacklevel=1,
        )
        warnings.warn(
            'Fail to import something else', UserWarning, stacklevel=1
        )
    messages = [str(w.message) for w in caught]
    assert messages == ['Fail to import something else']
