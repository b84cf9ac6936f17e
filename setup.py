"""Install mmcam_ext. The stack is pinned in requirements.txt (one place)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version: dict = {}
exec((ROOT / 'mmcam_ext' / 'version.py').read_text(), version)


def _requirements() -> list:
    lines = (ROOT / 'requirements.txt').read_text().splitlines()
    return [ln.strip() for ln in lines
            if ln.strip() and not ln.startswith('#') and ln.strip() != 'pytest']


setup(
    name='mmcam_ext',
    version=version['__version__'],
    description='Class-activation maps as a first-class part of MMPretrain',
    packages=find_packages(include=['mmcam_ext', 'mmcam_ext.*']),
    python_requires='>=3.9',
    install_requires=_requirements(),
    license='Apache-2.0',
)
