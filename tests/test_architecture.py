"""The import layers of pyproject.toml hold, and would catch an upward import.

``lint-imports`` (import-linter) checks the contract in ``pyproject.toml``.
The same check runs on a copy of the package with one upward import added,
which must break the contract: a future ``methods -> apis`` import fails CI.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name('lint-imports')

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(),
    reason='import-linter is not installed in this venv',
)


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), '--config', str(root / 'pyproject.toml')],
        cwd=root,
        env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_package(tmp_path: Path) -> Path:
    shutil.copy(ROOT / 'pyproject.toml', tmp_path / 'pyproject.toml')
    shutil.copytree(
        ROOT / 'mmcam_ext',
        tmp_path / 'mmcam_ext',
        ignore=shutil.ignore_patterns('__pycache__', '.mim'),
    )
    return tmp_path


def test_repository_keeps_its_import_layers():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '0 broken' in proc.stdout


@pytest.mark.parametrize(
    'module, upward',
    [
        ('methods/gradient.py', 'from ..apis import cam_engine'),
        ('utils/maps.py', 'from ..methods import base'),
        ('resolvers/generic.py', 'from ..methods import gradient'),
        ('apis/data.py', 'from ..visualization import gallery'),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward):
    root = _copy_package(tmp_path)
    path = root / 'mmcam_ext' / module
    # Inside a function, where such imports used to hide.
    path.write_text(
        path.read_text() + f'\n\ndef _sneaky():\n    {upward}  # noqa\n'
    )
    proc = _lint(root)
    assert proc.returncode != 0, proc.stdout
    assert 'BROKEN' in proc.stdout or 'broken' in proc.stdout
    importer = 'mmcam_ext.' + module[:-3].replace('/', '.')
    assert importer in proc.stdout, proc.stdout
