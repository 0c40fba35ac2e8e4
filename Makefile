# Tickscope developer commands. `make run` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run lint test test-repeat package-check bench fuzz sample package clean

# Each target installs what it needs: running needs only the app's dependencies (no test,
# packaging or cluster extras); `make test` adds the test, cluster and packaging extras (the
# packaging tests read PyInstaller's archive format; `make package-check` builds and
# smoke-tests the bundle), `make package` PyInstaller alone.
# `.installed-stamp` is the full developer set (what `make venv` makes).
RUN_STAMP := $(VENV)/.installed-run
PACKAGE_STAMP := $(VENV)/.installed-package
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e .
	touch $@

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[test,cluster,package]'
	touch $(RUN_STAMP) $(PACKAGE_STAMP) $@

$(PACKAGE_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e '.[package]'
	touch $(RUN_STAMP) $@

# The display check needs only the standard library: without a display `make run` says
# what to do in one line and exits 2 before installing anything.
run:
	@$(PYTHON) -m app.display
	@$(MAKE) --no-print-directory $(RUN_STAMP)
	$(PY) -m app

# ruff over the tree (pyproject's [tool.ruff]): pyflakes, pycodestyle errors, import order,
# bugbear, pyupgrade for 3.11. .ci/run runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .

# The whole suite in parallel but the frozen-bundle tests: one pytest-xdist worker per core;
# the test files sharing an expensive fixture (a Dask cluster, a big capture) each run on one
# worker (tests/conftest.py, ONE_WORKER_FILES). PYTEST_ARGS adds options, e.g.
# `make test PYTEST_ARGS="tests/core -x"`.
# pytest's exit code is make's: 5 (no tests collected) fails like any other.
# PYTHONDONTWRITEBYTECODE is unset for the run: with it set (as some shells and containers
# do) nothing is ever cached, so each xdist worker re-compiles and assertion-rewrites every
# test module and every `python -m app` subprocess compiles app/ again, run after run
# (~2.7 CPU-s per worker for collection alone). __pycache__/ is ignored by git.
PYTEST_ARGS ?=
test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(PY) -m pytest -n auto --dist loadgroup -m "not bundle" $(PYTEST_ARGS)

# The tests marked `bundle` (tests/test_packaging.py): build the frozen bundle, the .tar.gz
# and the .deb (PyInstaller, ~70 s of one core; reused while app/, resources/ and the recipe
# are unchanged), then run the bundle's selftest and GUI, and read the packages. Not in
# `make test` (the build alone is over half its two-minute budget); .ci/run runs it after
# `make test`. With CI set a missing PyInstaller fails instead of skipping.
package-check: $(STAMP)
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(PY) -m pytest -m bundle tests/test_packaging.py $(PYTEST_ARGS)

# `make test` N times in a row: each run's wall time and result, then the tally.
N ?= 20
test-repeat: $(STAMP)
	scripts/repeat_tests.sh $(N)

bench: $(STAMP)
	$(PY) scripts/bench.py
	$(PY) scripts/bench_queries.py
	$(PY) scripts/bench_gui.py

# Repeatable fuzz campaign (not part of `make test`): FUZZ_N mutated captures from FUZZ_SEED.
FUZZ_N ?= 2000
FUZZ_SEED ?= 14
fuzz: $(STAMP)
	$(PY) scripts/fuzz.py --captures $(FUZZ_N) --seed $(FUZZ_SEED)

sample: $(RUN_STAMP)
	$(PY) scripts/make_sample.py

# dist/tickscope/ (one-folder bundle), dist/tickscope-<version>-linux-<machine>.tar.gz and
# dist/tickscope_<version>_<arch>.deb, then the smoke test of the bundle (packaging/README.md).
package: $(PACKAGE_STAMP)
	$(PY) packaging/build.py --smoke

clean:
	rm -rf build dist .pytest_cache
