# Each target sets up .venv itself on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# A Python >= 3.12: on PATH as python3.13/python3.12/python3, or under pyenv.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 \
	$$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 \
	/root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3; do \
	p=$$(command -v $$c 2>/dev/null) || continue; \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: setup demo test bench lint docs clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.12 found; install python3.12 (or set PYTHON=/path/to/python3.12)" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@# The dashboard's browser assets, which Solara would otherwise fetch from a CDN.
	$(PY) -m experiments.dashboard install-assets || echo "warning: dashboard browser assets not installed (needs npm); the dashboard page may stay blank"
	@echo "Compiling the model's numba kernels (once per machine, about 15 s) ..."
	$(PY) -c "from model import run; run({'n_children': 50, 'months': 3}, seed=0)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/reintegration compare short_cycles long_term rolling community_first --replicates 20 --seed 1

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m experiments.bench

lint: setup
	$(VENV)/bin/ruff check model experiments tests

docs: setup
	$(PY) -m experiments.docs

clean:
	rm -rf $(VENV) results/*
