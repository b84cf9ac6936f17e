#!/usr/bin/env bash
# Run the whole suite (slow end-to-end tests included). pytest's exit code 5
# ("no tests collected") is treated as a failure, as CI does.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_browser.sh || echo "chromium set-up failed; the gallery browser test will say so" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$rc"
