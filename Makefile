# The README's two quick-start commands are `make demo` and `make test`.
# Both create .venv with the pinned stack first if it is missing.
PY := .venv/bin/python

.PHONY: env demo test test-fast bench

env:
	@bash scripts/setup_env.sh >/dev/null

demo: env
	$(PY) tools/demo.py

test: env
	bash scripts/run_tests.sh

test-fast: env
	$(PY) -m pytest -q -m "not slow"

bench: env
	$(PY) tools/benchmark.py
