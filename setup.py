"""Install mmcam_ext.

Besides the package, ``configs/`` and ``tools/`` are put into
``mmcam_ext/.mim/`` as MMPretrain does (``mim run mmcam_ext vis_cam``,
:func:`mmcam_ext.utils.config.config_path`): copied when a wheel is built,
linked for an editable install.
"""

import os
import os.path as osp
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
MIM_FOLDERS = ('configs', 'tools')


def add_mim_extension() -> None:
    """Link (editable install) or copy (wheel, sdist) configs/ and tools/."""
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    if not editable and not any(
        cmd in sys.argv
        for cmd in (
            'build',
            'build_py',
            'bdist_wheel',
            'sdist',
            'egg_info',
            'install',
        )
    ):
        return
    mim = ROOT / 'mmcam_ext' / '.mim'
    mim.mkdir(exist_ok=True)
    for name in MIM_FOLDERS:
        src, dst = ROOT / name, mim / name
        if not src.is_dir():  # building from an sdist: .mim already filled
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim), dst)
        else:
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc')
            )


def _requirements() -> list:
    lines = (ROOT / 'requirements.txt').read_text().splitlines()
    return [
        ln.strip()
        for ln in lines
        if ln.strip() and not ln.startswith('#') and ln.strip() != 'pytest'
    ]


version: dict = {}
exec((ROOT / 'mmcam_ext' / 'version.py').read_text(), version)

if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmcam_ext',
        version=version['__version__'],
        description='Class-activation maps as a first-class part of '
        'MMPretrain',
        packages=find_packages(include=['mmcam_ext', 'mmcam_ext.*']),
        include_package_data=True,
        package_data={'mmcam_ext': ['.mim/configs/**/*', '.mim/tools/**/*']},
        python_requires='>=3.9',
        install_requires=_requirements(),
        license='Apache-2.0',
    )
