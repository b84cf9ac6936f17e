"""Install mmcam_ext, laid out as OpenMMLab's codebases are.

Requirements are read from ``requirements/``: ``runtime.txt`` becomes
``install_requires`` (ranges only), ``demo.txt``, ``tests.txt`` and
``gradcam.txt``, ``analysis.txt`` the extras ``[demo]``, ``[tests]``,
``[gradcam]``, ``[analysis]``, and
``[all]`` is all of them. The exact dev/CI stack is ``requirements/lock.txt``,
a constraints file for ``scripts/setup_env.sh``; no pin reaches a user.

``configs/`` and ``tools/`` reach the package as ``mmcam_ext/.mim/``, where
MMPretrain keeps its own and where ``mim run`` and
:func:`mmcam_ext.utils.config.config_path` look:

* wheel (also one built from the sdist): ``build_py`` copies them into the
  build folder; the source tree is not touched;
* editable install (``pip install -e .``): symlinks in the source tree, so
  edits to ``configs/`` and ``tools/`` are live.

Tools that only work in a clone (``tools/benchmark*.py`` import the
top-level ``benchmarks/``) are not shipped.
"""

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MIM_FOLDERS = ('configs', 'tools')
#: Files of those folders that need the repository, so stay out of wheels.
REPO_ONLY = ('benchmark*.py', '__pycache__', '*.pyc')
EXTRAS = ('demo', 'tests', 'gradcam', 'analysis')
#: Commands that make a wheel; setuptools < 70.1 needs ``wheel`` for them.
WHEEL_COMMANDS = ('bdist_wheel', 'editable_wheel', 'dist_info')


def parse_requirements(name: str) -> List[str]:
    """Requirement lines of ``requirements/<name>``, following ``-r``.

    Args:
        name (str): File name below ``requirements/``.

    Returns:
        list[str]: Requirement specifiers without comments.
    """
    found: List[str] = []
    for raw in (ROOT / 'requirements' / name).read_text().splitlines():
        line = raw.split('#', 1)[0].strip()
        if line.startswith('-r '):
            found += parse_requirements(line[3:].strip())
        elif line:
            found.append(line)
    return found


def extras() -> Dict[str, List[str]]:
    """``extras_require``: one extra per requirements file, and ``all``.

    Returns:
        dict[str, list[str]]: Extra name to requirement specifiers.
    """
    table = {name: parse_requirements(f'{name}.txt') for name in EXTRAS}
    table['all'] = sorted({req for reqs in table.values() for req in reqs})
    return table


def _copy_mim_folder(src: Path, dst: Path) -> None:
    """Copy ``src`` (``configs/`` or ``tools/``) to ``dst`` for a wheel.

    Args:
        src (Path): The top-level folder of the clone or the sdist.
        dst (Path): Its place below ``mmcam_ext/.mim`` in the build folder.
    """
    if not src.is_dir():
        raise SystemExit(
            f'mmcam_ext: {src} is missing, so the package would ship without '
            f'{src.name}/. Build from a clone or from the sdist.'
        )
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*REPO_ONLY))


def link_mim_folders() -> None:
    """Point ``mmcam_ext/.mim/{configs,tools}`` at the top-level folders.

    For an editable install only. A folder left there by an older build is
    replaced; a correct link is kept.
    """
    mim = ROOT / 'mmcam_ext' / '.mim'
    mim.mkdir(exist_ok=True)
    for name in MIM_FOLDERS:
        dst, target = mim / name, os.path.join('..', '..', name)
        if dst.is_symlink() and os.readlink(dst) == target:
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        os.symlink(target, dst, target_is_directory=True)


class BuildPyWithMim(build_py):
    """``build_py`` that also puts configs/ and tools/ into ``.mim``."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # the links in the source tree serve an editable install
        mim = Path(self.build_lib) / 'mmcam_ext' / '.mim'
        for name in MIM_FOLDERS:
            _copy_mim_folder(ROOT / name, mim / name)


def _editable_commands() -> dict:
    """``editable_wheel`` (PEP 660) and ``develop`` that link ``.mim``."""
    from setuptools.command.develop import develop

    classes = {'develop': develop}
    try:
        from setuptools.command.editable_wheel import editable_wheel
    except ImportError:  # setuptools < 64: pip falls back to develop
        pass
    else:
        classes['editable_wheel'] = editable_wheel
    commands = {}
    for name, base in classes.items():

        def run(self, _base=base) -> None:
            link_mim_folders()
            _base.run(self)

        commands[name] = type(
            f'{base.__name__}_with_mim', (base,), {'run': run}
        )
    return commands


def check_wheel_support() -> None:
    """Fail early, with the fix, where setuptools cannot build a wheel.

    ``pip install --no-build-isolation`` uses the setuptools of the current
    environment; before 70.1 it needs the ``wheel`` package for
    ``bdist_wheel`` (a stock Python 3.11 venv has setuptools 65.5 and no
    ``wheel``: "invalid command 'bdist_wheel'").
    """
    if not any(cmd in sys.argv for cmd in WHEEL_COMMANDS):
        return
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (>= 70.1)
    except ImportError:
        try:
            import wheel.bdist_wheel  # noqa: F401
        except ImportError:
            raise SystemExit(
                'mmcam_ext: this setuptools cannot build wheels (no '
                'bdist_wheel). Run `pip install "setuptools>=70.1,<81"` (or '
                '`pip install wheel`) first, or install without '
                '--no-build-isolation.'
            ) from None


def version() -> str:
    """``__version__`` from ``mmcam_ext/version.py`` (without importing).

    Returns:
        str: The version string.
    """
    scope: dict = {}
    exec((ROOT / 'mmcam_ext' / 'version.py').read_text(), scope)
    return scope['__version__']


if __name__ == '__main__':
    check_wheel_support()
    setup(
        name='mmcam_ext',
        version=version(),
        description='Class-activation maps (Grad-CAM and friends) as a '
        'first-class part of MMPretrain experiments',
        long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
        long_description_content_type='text/markdown',
        author='mmcam_ext contributors',
        license='Apache-2.0',
        license_files=['LICENSE'],
        keywords='computer vision, image classification, grad-cam, '
        'explainability, mmpretrain, openmmlab',
        classifiers=[
            'Development Status :: 4 - Beta',
            'Intended Audience :: Developers',
            'Intended Audience :: Science/Research',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3 :: Only',
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
            'Topic :: Scientific/Engineering :: Image Recognition',
        ],
        packages=find_packages(include=['mmcam_ext', 'mmcam_ext.*']),
        # 3.10: what ruff/mypy check the code against (target py310) and
        # the oldest Python of the pinned stack (torch 2.14 needs 3.10);
        # 3.9 is neither checked nor tested, so it is not claimed.
        python_requires='>=3.10',
        install_requires=parse_requirements('runtime.txt'),
        extras_require=extras(),
        entry_points={
            'console_scripts': [
                'mmcam-vis-cam = mmcam_ext.cli.vis_cam:main',
                'mmcam-demo = mmcam_ext.cli.demo:main',
                'mmcam-patterns = mmcam_ext.cli.find_patterns:main',
                'mmcam-mine = mmcam_ext.cli.mine_negatives:main',
            ]
        },
        cmdclass={'build_py': BuildPyWithMim, **_editable_commands()},
        zip_safe=False,
    )
