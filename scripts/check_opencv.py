"""Check that this environment has one ``cv2`` that works without a GUI.

``opencv-python`` (from mmengine/mmcv) and ``opencv-python-headless`` (from
grad-cam 1.5.7) both install the ``cv2`` folder; with both present the last
one installed wins and uninstalling either breaks ``cv2``. Run by
``scripts/setup_env.sh`` (dev venv) and ``scripts/check_packaging.sh``
(a user's venv). Exit status 1 with the reason when a check fails.

Usage: ``python scripts/check_opencv.py``
"""

import importlib.metadata
import sys
from typing import List


def cv2_distributions() -> List[str]:
    """Installed distributions that ship ``cv2/__init__.py``.

    Returns:
        list[str]: Their ``name==version``, sorted.
    """
    found = set()
    for dist in importlib.metadata.distributions():
        files = dist.files or []
        if any(str(f).replace('\\', '/') == 'cv2/__init__.py' for f in files):
            found.add(f'{dist.metadata["Name"]}=={dist.version}')
    return sorted(found)


def png_round_trip() -> None:
    """Encode and decode a PNG in memory (no display, no file).

    Raises:
        RuntimeError: When encoding fails or the pixels change.
    """
    import cv2
    import numpy as np

    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    ok, data = cv2.imencode('.png', image)
    if not ok:
        raise RuntimeError('cv2.imencode(".png") failed')
    back = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if back is None or not np.array_equal(back, image):
        raise RuntimeError('a PNG written by cv2 does not read back equal')


def main() -> int:
    """Run both checks and report.

    Returns:
        int: 0 when exactly one distribution provides a working ``cv2``.
    """
    dists = cv2_distributions()
    if len(dists) != 1:
        print(
            f'check_opencv: {len(dists)} distributions provide cv2 '
            f'({", ".join(dists) or "none"}); expected exactly one. Fix: '
            'pip uninstall -y opencv-python-headless && pip install '
            '--force-reinstall --no-deps opencv-python',
            file=sys.stderr,
        )
        return 1
    try:
        png_round_trip()
    except (ImportError, RuntimeError) as err:
        print(
            f'check_opencv: cv2 from {dists[0]} fails: {err}', file=sys.stderr
        )
        return 1
    import cv2

    print(f'check_opencv: one cv2 ({dists[0]}, {cv2.__version__}), PNG ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
