# Tickscope developer commands. `make run` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test bench fuzz sample package clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,package,cluster]'
	touch $(STAMP)

run: venv
	$(PY) -m app

test: venv
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(PY) -m pytest

bench: venv
	$(PY) scripts/bench.py

# Repeatable fuzz campaign (not part of `make test`): FUZZ_N mutated captures from FUZZ_SEED.
FUZZ_N ?= 2000
FUZZ_SEED ?= 14
fuzz: venv
	$(PY) scripts/fuzz.py --captures $(FUZZ_N) --seed $(FUZZ_SEED)

sample: venv
	$(PY) scripts/make_sample.py

# dist/tickscope/ (one-folder bundle), dist/tickscope-<version>-linux-<machine>.tar.gz and
# dist/tickscope_<version>_<arch>.deb, then the smoke test of the bundle (packaging/README.md).
package: venv
	$(PY) packaging/build.py --smoke

clean:
	rm -rf build dist .pytest_cache
