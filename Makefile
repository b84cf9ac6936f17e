# The README's two quick-start commands are `make demo` and `make test`.
# Both create .venv with the pinned stack first if it is missing
# (scripts/setup_env.sh; pins in requirements/lock.txt).
PY := .venv/bin/python

.PHONY: env demo test test-fast packaging bench

env:
	@bash scripts/setup_env.sh >/dev/null

demo: env
	$(PY) tools/demo.py

# What CI runs (.ci/run): the whole suite, then the packaging stage (a
# user's venv outside the clone; see scripts/check_packaging.sh). Both run
# even if the first fails; the exit status is non-zero if either did.
test: env
	@rc=0; bash scripts/run_tests.sh || rc=1; \
	bash scripts/check_packaging.sh || rc=1; exit $$rc

test-fast: env
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

packaging: env
	bash scripts/check_packaging.sh

bench: env
	$(PY) tools/benchmark.py
