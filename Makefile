# The README's two commands: `make run` (set up, run the whole pipeline on the demo data) and
# `make test` (set up, run the test suite). Both are idempotent.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU build lies on this machine's disk; elsewhere override, e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
export PIPELINE_HOME ?= $(CURDIR)/.pipeline

.PHONY: install run test test-fast lint format docs clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test,browser]"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/pipeline demo
	$(VENV)/bin/pipeline run

test: install
	$(VENV)/bin/python -m pytest

test-fast: install
	$(VENV)/bin/python -m pytest -m "not integration and not smoke"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: install
	$(PY) -m pipeline.config_reference > docs/configuration.md
	$(PY) -m pipeline.deployments.render > deployments/prefect.yaml

clean:
	rm -rf $(VENV) .pipeline
