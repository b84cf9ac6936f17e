#!/usr/bin/env bash
# Create .venv with the pinned dev/CI stack if it is missing or stale
# (idempotent). Usage: scripts/setup_env.sh  -> prints the venv path
#
# The pins are requirements/lock.txt, used as constraints over the ranges of
# requirements/{runtime,demo,tests}.txt. Two special cases:
# - torch/torchvision are installed first as an exact pair, so nothing else
#   makes pip resolve another torch;
# - grad-cam 1.5.7 declares opencv-python-headless, which would put a second
#   cv2 next to mmcv's opencv-python: it is installed without dependencies,
#   plus its other requirements. Exactly one opencv distribution remains
#   (checked at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMCAM_VENV:-$ROOT/.venv}"
STAMP="$VENV/.mmcam_ext_stamp"
LOCK="$ROOT/requirements/lock.txt"
WANT="$(cat "$ROOT"/requirements/*.txt "$ROOT/requirements.txt" \
  "$ROOT/setup.py" "$ROOT/pyproject.toml" "$0" | sha1sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "$VENV"; exit 0
fi
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >&2
pip_install() {
  # This machine's pip.conf lists local indexes; drop their noise, keep errors.
  "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
}
pinned() {  # the lock's pin of one package: pinned NAME -> NAME==VERSION
  grep -iE "^$1==" "$LOCK"
}
echo "Creating $VENV (torch + the pinned stack of requirements/lock.txt, a few minutes)..." >&2
pip_install "$(pinned torch)" "$(pinned torchvision)"
pip_install -c "$LOCK" setuptools mmcv-lite \
  -r "$ROOT/requirements/runtime.txt" \
  -r "$ROOT/requirements/demo.txt" \
  -r "$ROOT/requirements/tests.txt"
# grad-cam's requirements, except opencv-python-headless (see above); pip
# says "grad-cam 1.5.7 requires opencv-python-headless": expected.
pip_install -c "$LOCK" --no-deps "$(pinned grad-cam)"
pip_install -c "$LOCK" ttach tqdm scipy scikit-learn pillow
echo "(grad-cam without opencv-python-headless on purpose: one cv2, from opencv-python)" >&2
# A venv made before this script avoided it may hold both opencv packages;
# they share the cv2 folder, so removing one needs the other reinstalled.
if "$VENV/bin/python" -m pip show -q opencv-python-headless >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall -q -y opencv-python-headless >&2
  pip_install -c "$LOCK" --no-deps --force-reinstall opencv-python
fi
pip_install --no-build-isolation --no-deps -e "$ROOT"
"$VENV/bin/python" "$ROOT/scripts/check_opencv.py" >&2
echo "$WANT" > "$STAMP"
echo "$VENV"
