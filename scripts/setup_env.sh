#!/usr/bin/env bash
# Create .venv with the pinned stack if it is missing (idempotent).
# Usage: scripts/setup_env.sh  -> prints the venv path
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMCAM_VENV:-$ROOT/.venv}"
STAMP="$VENV/.mmcam_ext_stamp"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/setup.py" 2>/dev/null | sha1sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "$VENV"; exit 0
fi
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >&2
pip_install() {
  # This machine's pip.conf lists local indexes; drop their noise, keep errors.
  "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
}
echo "Creating $VENV (torch 2.14.1 + pinned stack, a few minutes)..." >&2
# torch and torchvision as an exact pair first (pins from requirements.txt),
# so nothing else makes pip resolve another torch.
TORCH_PINS=$(grep -E '^(torch|torchvision)==' "$ROOT/requirements.txt")
# shellcheck disable=SC2086
pip_install $TORCH_PINS
pip_install -r "$ROOT/requirements.txt"
pip_install --no-build-isolation --no-deps -e "$ROOT"
echo "$WANT" > "$STAMP"
echo "$VENV"
