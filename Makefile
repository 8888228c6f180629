# geosr: every target sets itself up on a fresh Debian 12 + Python 3.11 machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast lint format demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Run the whole test suite.
test: $(STAMP)
	$(PY) -m pytest -q

## Skip tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check geosr tests benchmarks
	$(VENV)/bin/ruff format --check geosr tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format geosr tests benchmarks
	$(VENV)/bin/ruff check --fix geosr tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
