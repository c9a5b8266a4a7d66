# The README's two commands: `make run` (set up, run the whole pipeline on the demo data) and
# `make test` (set up, run the test suite). Both are idempotent.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU build lies on this machine's disk; elsewhere override, e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
export PIPELINE_HOME ?= $(CURDIR)/.pipeline
# Exact versions and hashes of every dependency but torch (extras model, test, browser, team, bench).
LOCK := requirements/lock.txt
LOCK_EXTRAS := model,test,browser,team,bench

.PHONY: install run test test-fast lint format docs lock clean

# torch first (CPU or CUDA build), then the lock with hashes and without resolving, then this package alone;
# `pip check` proves that the installed set is complete and consistent.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q --no-deps --require-hashes -r $(LOCK)
	$(PIP) install -q --no-deps -e .
	$(PIP) check
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
	$(PY) -m pipeline.config.reference > docs/configuration.md
	$(PY) -m pipeline.deployments.render > deployments/prefect.yaml
	$(PY) -m pipeline.deployments.render containers > deployments/prefect-containers.yaml

# Re-resolve the lock after changing dependencies in pyproject.toml (keeps current pins where they still fit).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip-tools
	$(VENV)/bin/pip-compile pyproject.toml --extra $(LOCK_EXTRAS) --generate-hashes --strip-extras \
	  --unsafe-package torch --no-emit-find-links --no-emit-index-url -o $(LOCK)
	$(PY) -c "import pathlib; p = pathlib.Path('$(LOCK)'); t = p.read_text(); \
	  p.write_text(t[:t.index('# WARNING')] + '# torch is left out on purpose: make install installs it first from the TORCH variable.\n')"

clean:
	rm -rf $(VENV) .pipeline
