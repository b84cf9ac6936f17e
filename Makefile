# The README's two quick-start commands are `make demo` and `make test`.
# Both create .venv with the pinned stack first if it is missing
# (scripts/setup_env.sh; pins in requirements/lock.txt).
PY := .venv/bin/python

.PHONY: env demo test test-fast lint packaging bench

env:
	@bash scripts/setup_env.sh >/dev/null

demo: env
	$(PY) tools/demo.py

# What CI runs (.ci/run): the code checks (ruff, import layers, mypy), the
# whole suite, then the packaging stage (a user's venv outside the clone;
# see scripts/check_packaging.sh). All run even if one fails; the exit
# status is non-zero if any did.
test: env
	@rc=0; bash scripts/lint.sh || rc=1; \
	bash scripts/run_tests.sh || rc=1; \
	bash scripts/check_packaging.sh || rc=1; exit $$rc

lint: env
	bash scripts/lint.sh

test-fast: env
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

packaging: env
	bash scripts/check_packaging.sh

bench: env
	$(PY) tools/benchmark.py
