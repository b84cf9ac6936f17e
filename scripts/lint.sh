#!/usr/bin/env bash
# The code checks of `make test` (and `make lint`): formatting, lint rules,
# the import layers of pyproject.toml and the type check. All must pass.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
rc=0
run() { echo "+ $*"; "$@" || rc=1; }
run "$BIN/ruff" format --check .
run "$BIN/ruff" check .
run "$BIN/lint-imports"
run "$BIN/mypy"
exit "$rc"
