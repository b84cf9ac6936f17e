"""Shared demo fixtures: converted once per test session."""

import pytest

from mmcam_ext.demo import load_demo_model, prepare_demo


@pytest.fixture(scope='session')
def demo_assets(tmp_path_factory):
    return prepare_demo(str(tmp_path_factory.mktemp('demo')))


@pytest.fixture(scope='session')
def demo_model(demo_assets):
    return load_demo_model(demo_assets)


@pytest.fixture(scope='session')
def demo_image(demo_assets):
    """Path of a demo photo by its name (``chelsea``, ``coffee``...)."""
    by_name = {
        p.rsplit('/', 1)[-1].rsplit('.', 1)[0]: p for p in demo_assets.images
    }
    return by_name.__getitem__
