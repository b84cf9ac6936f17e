"""The import package works from a wheel: nothing under ``mmcam_ext/``
reaches the repository's ``configs/``, ``tools/``, ``tests/`` or
``benchmarks/`` by a relative path or an import.

The only way to the plugin's configs and tools is
``mmcam_ext/utils/config.py``, which looks in ``mmcam_ext/.mim`` (filled by
the wheel build or linked by ``pip install -e``). CI's packaging stage runs
the demo and the config helper from an installed wheel as well.
"""

import ast
import re
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import mmcam_ext
from mmcam_ext.utils import config

PACKAGE = Path(mmcam_ext.__file__).parent
GATEWAY = PACKAGE / 'utils' / 'config.py'
REPO_ONLY = ('configs', 'tools', 'tests', 'benchmarks')
# A path component that leaves the package or names a repository folder.
REPO_PATH = re.compile(
    r'(^|[/\\])(\.\.|' + '|'.join(REPO_ONLY) + r')([/\\]|$)'
)


def _sources() -> List[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob('*.py')
        if '.mim' not in p.relative_to(PACKAGE).parts
    )


def _docstrings(tree: ast.AST) -> set:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            found.add(id(body[0].value))
    return found


def _findings(path: Path) -> Iterator[Tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == '__file__':
            yield node.lineno, '__file__'
        elif isinstance(node, ast.Attribute) and node.attr in (
            'parents',
            'pardir',
        ):
            yield node.lineno, node.attr
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and REPO_PATH.search(node.value)
        ):
            yield node.lineno, repr(node.value[:60])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in getattr(node, 'names', [])]
            module = getattr(node, 'module', None) or ''
            for name in [module, *names]:
                if name.split('.')[0] in ('tests', 'benchmarks', 'tools'):
                    yield node.lineno, f'import {name}'


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """Not vacuous: each kind of reach is reported."""
    bad = tmp_path / 'bad.py'
    bad.write_text(
        'import os\n'
        'from pathlib import Path\n'
        'from benchmarks import suite\n'
        'ROOT = Path(__file__).parents[2]\n'
        "CFG = os.path.join(os.pardir, 'configs/demo.py')\n"
        "TOOL = '../tools/vis_cam.py'\n"
    )
    kinds = {what for _, what in _findings(bad)}
    assert {'__file__', 'parents', 'pardir', 'import benchmarks'} <= kinds
    assert "'configs/demo.py'" in kinds and "'../tools/vis_cam.py'" in kinds


@pytest.mark.parametrize(
    'path', _sources(), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_reach_into_the_repository(path):
    found = list(_findings(path))
    if path == GATEWAY:
        # The gateway may locate itself and name its two .mim sub-folders.
        found = [
            f
            for f in found
            if f[1] not in ('__file__', 'parents', "'configs'", "'tools'")
        ]
    assert not found, f'{path.relative_to(PACKAGE)}: {found}'


def test_gateway_looks_inside_the_package():
    assert config.mim_root() == PACKAGE.resolve() / '.mim'
