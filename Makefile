# Tickscope developer commands. `make run` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test bench sample package clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: venv
	$(PY) -m app

test: venv
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(PY) -m pytest

bench: venv
	$(PY) scripts/bench.py

sample: venv
	$(PY) scripts/make_sample.py

package: venv
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[package]'
	$(PY) packaging/build.py

clean:
	rm -rf build dist .pytest_cache
