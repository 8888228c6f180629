# geosr: every target sets itself up on a fresh Debian 12 + Python 3.11 machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' geosr/version.py)
WHEEL   = $(CURDIR)/dist/geosr-$(VERSION)-py3-none-any.whl

.PHONY: setup test test-fast test-qgis lint format demo bench clean qgis-plugin dist wheel-check docs

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# the documentation's tools (the docs extra: Sphinx, the PyData theme, MyST, myst-nb, ...)
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,docs]'
	touch $(DOCS_STAMP)

## The main job: upscale the bundled sample scene with the bundled default model.
demo: $(STAMP)
	$(PY) -m geosr demo --out out/demo

## Benchmarks (ratios against baselines measured in the same run).
bench: $(STAMP)
	$(PY) benchmarks/run.py --json out/bench.json

## Run the whole test suite: the library, then the QGIS plugin in real QGIS.
test: $(STAMP) dist
	$(PY) -m pytest -q
	GEOSR_PYTHON=$(CURDIR)/$(PY) GEOSR_WHEEL=$(WHEEL) bash qgis_plugin/run_tests.sh

## The library's tests without those marked slow (no QGIS).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

## Test the QGIS plugin in real QGIS (installs Debian's qgis when missing; needs root).
test-qgis: $(STAMP) dist
	GEOSR_PYTHON=$(CURDIR)/$(PY) GEOSR_WHEEL=$(WHEEL) bash qgis_plugin/run_tests.sh

## Build the sdist and the wheel (bundled weights and sample scene inside) into dist/.
dist: $(STAMP)
	rm -rf dist/geosr-*
	$(PY) -m build --outdir dist .

## Install the wheel in a clean venv and run geosr demo, geosr upscale and the notebooks there.
wheel-check: dist
	bash scripts/check_wheel.sh $(PYTHON)

## Build the QGIS plugin zip (dist/geosr_qgis-<version>.zip) for Plugins > Install from ZIP.
qgis-plugin:
	python3 qgis_plugin/build_zip.py

## The documentation site into out/docs/ (index.html): warnings are errors, no network needed.
## The notebooks run during the build; out/docs-cache/ keeps their results until their code changes.
docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -E -b html docs out/docs

lint: $(STAMP)
	$(VENV)/bin/ruff check geosr tests benchmarks qgis_plugin
	$(VENV)/bin/ruff format --check geosr tests benchmarks qgis_plugin

format: $(STAMP)
	$(VENV)/bin/ruff format geosr tests benchmarks qgis_plugin
	$(VENV)/bin/ruff check --fix geosr tests benchmarks qgis_plugin

clean:
	rm -rf $(VENV) .venv-qgis build dist *.egg-info .pytest_cache out docs/generated
