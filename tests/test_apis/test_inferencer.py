"""CAMInferencer: batching invariance, agreement with CAMEngine, bad inputs."""

import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate

from mmcam_ext.apis import CAMEngine, CAMInferencer, ImageLoadError
from mmcam_ext.apis.data import list_images, unique_prefix
from mmcam_ext.errors import ConfigError


@pytest.fixture(scope='module')
def inferencer(small_setup):
    return CAMInferencer(small_setup['config'], pretrained=small_setup['ckpt'])


def test_batched_results_equal_per_image(inferencer, small_setup):
    methods = ('gradcam', 'gradcam++')
    batched = inferencer(small_setup['img_dir'], methods, batch_size=3)
    single = inferencer(small_setup['img_dir'], methods, batch_size=1)
    assert [r['img_path'] for r in batched] == sorted(
        os.path.join(small_setup['img_dir'], f)
        for f in ('img0.png', 'img1.png', 'img2.png')
    )
    for b, s in zip(batched, single):
        assert b['pred_label'] == s['pred_label']
        assert set(b['maps']) == {'GradCAM', 'GradCAMPlusPlus'}
        for name in b['maps']:
            assert b['maps'][name].shape == (1, 64, 64)
            np.testing.assert_allclose(
                b['maps'][name], s['maps'][name], atol=1e-5
            )
            np.testing.assert_allclose(
                b['raw_maps'][name], s['raw_maps'][name], atol=1e-5
            )
        assert np.ptp(b['maps']['GradCAM']) > 0.5  # not a blank map


def test_inferencer_equals_engine_on_mmpretrain_preprocessing(
    inferencer, small_setup
):
    """Same maps as CAMEngine fed like MMPretrain's own vis_cam feeds it."""
    from mmpretrain.registry import TRANSFORMS

    cfg = Config.fromfile(small_setup['config'])
    pipeline = Compose(
        [TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline]
    )
    paths = list_images(small_setup['img_dir'])
    data = default_collate([pipeline({'img_path': p}) for p in paths])
    batch = inferencer.model.data_preprocessor(data, False)
    ref = CAMEngine(inferencer.model).explain(
        batch['inputs'], ('gradcam',), topk=2
    )
    ours = inferencer(paths, ('gradcam',), topk=2, batch_size=2)
    for i, res in enumerate(ours):
        np.testing.assert_allclose(
            res['maps']['GradCAM'], ref.maps['GradCAM'][i], atol=1e-5
        )
        np.testing.assert_array_equal(res['targets'], ref.targets[i])
        assert res['pred_label'] == ref.pred_labels[i]
        # The image is what was fed, in RGB (pipeline output is BGR).
        fed_bgr = data['inputs'][i].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(res['image'], fed_bgr[..., ::-1])


def test_targets_per_image_and_class_names(inferencer, small_setup):
    res = inferencer(small_setup['img_dir'], targets=[3, 7, 11], batch_size=2)
    assert [int(r['targets'][0]) for r in res] == [3, 7, 11]
    assert res[0]['target_classes'][0] == inferencer.classes[3]
    assert res[0]['pred_class'] == inferencer.classes[res[0]['pred_label']]
    with pytest.raises(ValueError, match='3 images'):
        inferencer(small_setup['img_dir'], targets=[1, 2])


def test_numpy_input_matches_file_input(inferencer, small_setup):
    import mmcv

    path = os.path.join(small_setup['img_dir'], 'img1.png')
    from_file = inferencer(path)[0]
    from_array = inferencer(mmcv.imread(path))[0]  # BGR like mmcv.imread
    assert from_array['img_path'] is None
    np.testing.assert_allclose(
        from_array['maps']['GradCAM'], from_file['maps']['GradCAM'], atol=1e-6
    )


def test_corrupt_and_missing_images_give_clear_errors(inferencer, tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8 this is not a jpeg')
    with pytest.raises(ImageLoadError, match='broken.jpg'):
        inferencer(str(bad))
    with pytest.raises(ImageLoadError, match='does not exist'):
        inferencer(str(tmp_path / 'missing.png'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ImageLoadError, match='No image files'):
        inferencer(str(empty))


def test_model_forms(small_setup):
    from mmpretrain import get_model

    with pytest.raises(ConfigError, match='nope.py'):
        CAMInferencer('nope.py')
    built = get_model(small_setup['config'])
    inf = CAMInferencer(built, pretrained=small_setup['ckpt'])
    ref = CAMInferencer(small_setup['config'], pretrained=small_setup['ckpt'])
    for a, b in zip(
        inf.model.state_dict().values(), ref.model.state_dict().values()
    ):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='no config'):
        CAMInferencer(torch.nn.Linear(2, 2))


def test_list_images_glob_and_unique_prefix(small_setup, tmp_path):
    pattern = os.path.join(small_setup['img_dir'], 'img[01].png')
    assert [os.path.basename(p) for p in list_images(pattern)] == [
        'img0.png',
        'img1.png',
    ]
    (tmp_path / 'cat_cam.png').write_bytes(b'user file')
    taken = set()
    first = unique_prefix(str(tmp_path), 'cat', ['_cam.png'], taken)
    second = unique_prefix(str(tmp_path), 'cat', ['_cam.png'], taken)
    assert first == str(tmp_path / 'cat_1')
    assert second == str(tmp_path / 'cat_2')
    assert unique_prefix(
        str(tmp_path), 'cat', ['_cam.png'], overwrite=True
    ) == str(tmp_path / 'cat')
