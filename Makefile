# trainwell's two everyday commands:
#   make quickstart   set up .venv and reproduce the chapter (quick budget), writing reproduce/report.html
#                     (it fails, with the first failure's message, when a run fails: e.g. without the datasets)
#   make test         set up .venv and run the test suite (what CI runs)
#   make test-quick   the same without the tests marked slow (pytest -m "not slow"): a quick local run
# TORCH picks the PyTorch requirement: the default "torch" is what a GPU user wants;
# on a CPU-only machine `make test TORCH=torch==2.13.0` (or any CPU build) avoids the CUDA download.

PYTHON ?= python3
TORCH ?= torch
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-quick bench clean

$(BIN)/trainwell: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

setup: $(BIN)/trainwell

quickstart: setup
	$(BIN)/trainwell reproduce

test: setup
	$(BIN)/python -m pytest

test-quick: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python benchmarks/suite.py --quick

clean:
	rm -rf $(VENV) runs reproduce .pytest_cache .hypothesis
