# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test check bench collector screenshots clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "emp-tui needs Python 3.11 or newer; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@ $(VENV)/.dev-installed

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	@touch $@

# `make demo DEMO_ARGS="--scenario stalled-job"` passes options on (see `emp-tui demo --help`).
DEMO_ARGS ?=
demo: $(VENV)/.demo-installed
	$(BIN)/emp-tui demo $(DEMO_ARGS)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

check: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.bench-installed
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

collector: $(VENV)/.demo-installed
	$(BIN)/emp-collector

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# SVG (and PNG with rsvg-convert or cairosvg) of the app from deterministic sample data.
screenshots: $(VENV)/.dev-installed
	$(BIN)/python scripts/screenshots.py
	EMP_TUI_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_serve.py -k browser
