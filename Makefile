# Everything runs in a virtual environment inside the checkout (.venv), created on demand, so
# a fresh machine with only Python 3.11+ needs no global installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dask,tuning]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

## demo: install, run the EU-Russia readmission showcase and draw its figures
demo: $(VENV)/.installed
	$(BIN)/diffusion-sim run scenarios/eu_russia_readmission.yaml

## test: install the test extras and run the whole test suite
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check diffusion_sim tests benchmarks
	$(BIN)/mypy diffusion_sim

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_batch.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
