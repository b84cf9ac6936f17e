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
PIP="$VENV/bin/python -m pip"
# torch and torchvision as an exact pair first, so nothing else resolves another torch.
$PIP install -q "torch==2.14.1" "torchvision==0.29.1" >&2
$PIP install -q -r "$ROOT/requirements.txt" "torch==2.14.1" "torchvision==0.29.1" >&2
$PIP install -q --no-build-isolation --no-deps -e "$ROOT" >&2
echo "$WANT" > "$STAMP"
echo "$VENV"
