"""The wheel and the sdist hold what a user needs, and only that.

Built with ``python -m build --no-isolation`` (this venv's setuptools) from
a copy of the repository's files in a temporary folder, so the clone is not
touched. CI's packaging stage builds again with build isolation and installs
both into a user's venv.
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytest.importorskip('build', reason='needs `build` (requirements/tests.txt)')

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TOOLS = {
    'vis_cam.py',
    'demo.py',
    'dist_launch.py',
    'find_patterns.py',
    'mine_negatives.py',
}  # benchmark*.py need benchmarks/


def _tree_files(folder: str):
    base = ROOT / folder
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in base.rglob('*.py')
        if '__pycache__' not in p.parts
    }


@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    work = tmp_path_factory.mktemp('build')
    src = work / 'src'
    listed = subprocess.run(
        [
            'git',
            '-C',
            str(ROOT),
            'ls-files',
            '-z',
            '-co',
            '--exclude-standard',
        ],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split('\0')):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'build',
            '--no-isolation',
            '--outdir',
            str(work / 'dist'),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (work / 'dist').glob('*.whl')
    (sdist,) = (work / 'dist').glob('*.tar.gz')
    return wheel, sdist


@pytest.fixture(scope='module')
def wheel_files(dist):
    with zipfile.ZipFile(dist[0]) as whl:
        return {name: whl.read(name) for name in whl.namelist()}


@pytest.fixture(scope='module')
def metadata(wheel_files):
    (name,) = [n for n in wheel_files if n.endswith('.dist-info/METADATA')]
    return Parser().parsestr(wheel_files[name].decode())


def test_wheel_ships_configs_and_tools_in_mim(wheel_files):
    mim = 'mmcam_ext/.mim/'
    configs = {
        n[len(mim + 'configs/') :]: data
        for n, data in wheel_files.items()
        if n.startswith(mim + 'configs/')
    }
    assert configs == _tree_files('configs')
    tools = {
        n[len(mim + 'tools/') :]
        for n in wheel_files
        if n.startswith(mim + 'tools/')
    }
    assert tools == SHIPPED_TOOLS
    assert {'benchmark.py', 'benchmark_attention.py'} <= set(
        _tree_files('tools')
    )


def test_wheel_holds_the_package_only(wheel_files):
    roots = {n.split('/')[0] for n in wheel_files}
    assert roots == {'mmcam_ext', 'mmcam_ext-0.1.0.dist-info'}
    (top,) = [n for n in wheel_files if n.endswith('top_level.txt')]
    assert wheel_files[top].decode().split() == ['mmcam_ext']
    licence = [
        n for n in wheel_files if n.endswith('dist-info/licenses/LICENSE')
    ]
    assert licence and b'Apache License' in wheel_files[licence[0]]
    assert wheel_files[licence[0]] == (ROOT / 'LICENSE').read_bytes()


def test_metadata(metadata, wheel_files):
    assert metadata['Requires-Python'] == '>=3.10'
    assert metadata['License'] == 'Apache-2.0'
    assert (
        metadata.get_payload().strip()
        == (ROOT / 'README.md').read_text().strip()
    )
    assert metadata['Description-Content-Type'] == 'text/markdown'
    requires = metadata.get_all('Requires-Dist')
    base = [r for r in requires if 'extra ==' not in r]
    assert base and not [r for r in base if '==' in r]
    assert {r.split('>')[0].split('<')[0] for r in base} == {
        'torch',
        'mmengine',
        'mmpretrain',
        'numpy',
        'matplotlib',
    }
    assert set(metadata.get_all('Provides-Extra')) == {
        'demo',
        'tests',
        'gradcam',
        'analysis',
        'all',
    }
    (entry,) = [n for n in wheel_files if n.endswith('entry_points.txt')]
    text = wheel_files[entry].decode()
    assert 'mmcam-vis-cam = mmcam_ext.cli.vis_cam:main' in text
    assert 'mmcam-demo = mmcam_ext.cli.demo:main' in text
    assert 'mmcam-patterns = mmcam_ext.cli.find_patterns:main' in text
    assert 'mmcam-mine = mmcam_ext.cli.mine_negatives:main' in text


def test_sdist_can_build_the_wheel_and_holds_no_repo_only_files(dist):
    with tarfile.open(dist[1]) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
    for needed in (
        'setup.py',
        'pyproject.toml',
        'MANIFEST.in',
        'LICENSE',
        'README.md',
        'requirements.txt',
        'requirements/runtime.txt',
        'requirements/lock.txt',
        'configs/demo/efficientnet_lite0_timm_in1k.py',
        'tools/vis_cam.py',
        'mmcam_ext/__main__.py',
    ):
        assert needed in names, needed
    assert not [
        n
        for n in names
        if n.startswith(('tests', 'benchmarks', 'mmcam_ext/.mim'))
    ]
    assert 'tools/benchmark.py' not in names
