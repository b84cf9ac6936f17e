"""What the installed pytorch-grad-cam offers (it is optional).

The library-method tests run against grad-cam 1.5.7 (the dev venv) and
1.4.8 (CI's packaging stage). Where a release lacks a class there is
nothing to compare with: those cases are skipped here, and
``tests/test_methods/test_grad_cam_lib.py`` checks that the method is
refused with the release that adds it.
"""

import importlib
import importlib.util

import pytest

__all__ = [
    'GRADIENT_FAMILY',
    'LIB_CLASS',
    'has_lib_class',
    'needs_lib_class',
    'lib_param',
    'reference_param',
]

#: The eight pytorch-grad-cam methods the engine computes natively from one
#: forward/backward (the spec: the library's own list must equal it).
GRADIENT_FAMILY = [
    'GradCAM',
    'GradCAMPlusPlus',
    'XGradCAM',
    'HiResCAM',
    'GradCAMElementWise',
    'LayerCAM',
    'EigenCAM',
    'EigenGradCAM',
]

#: Our method name -> the pytorch_grad_cam class it runs.
LIB_CLASS = {
    'AblationCAM': 'AblationCAM',
    'FullGrad': 'FullGrad',
    'KPCACAM': 'KPCA_CAM',
    'ShapleyCAM': 'ShapleyCAM',
    'FinerCAM': 'FinerCAM',
    'RandomCAM': 'RandomCAM',
    'FEM': 'FEM',
    'SegEigenCAM': 'SegEigenCAM',
}


def has_lib_class(name: str) -> bool:
    """Whether ``pytorch_grad_cam`` is installed and has class ``name``."""
    if importlib.util.find_spec('pytorch_grad_cam') is None:
        return False
    return hasattr(importlib.import_module('pytorch_grad_cam'), name)


def needs_lib_class(
    name: str,
    why: str = 'test_grad_cam_lib.py checks that it is refused',
) -> pytest.MarkDecorator:
    """Skip where the installed grad-cam has no class ``name``."""
    return pytest.mark.skipif(
        not has_lib_class(name),
        reason=f'the installed grad-cam has no {name}; {why}',
    )


def lib_param(method: str):
    """``pytest.param(method)`` skipped where grad-cam lacks its class."""
    return pytest.param(method, marks=needs_lib_class(LIB_CLASS[method]))


def reference_param(method: str):
    """``pytest.param(method)`` of a native method compared with the
    library's class of the same name, skipped where the installed release
    lacks it (grad-cam 1.4.0 has no HiResCAM; our own needs no library)."""
    return pytest.param(
        method,
        marks=needs_lib_class(method, 'nothing to compare with'),
    )
