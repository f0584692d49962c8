# Two commands do all the set-up on a fresh machine (see README):
#   make demo   installs everything, then prints the shipped sample's subtitles (default model,
#               the subtitle profile for the sample's language)
#   make test   installs everything, then runs lint, type checks and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= samples/sample-en.flac
# PyTorch for fine-tuning, pinned first so that pip takes a CPU build where one is provided (a
# local wheel) instead of the newest build with its CUDA packages; override: make TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: demo test lint typecheck pytest setup system-deps clean

demo: setup
	$(BIN)/malsori transcribe $(SAMPLE) --subtitle-profile auto -f srt -o -

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/malsori models pull base
	touch $@

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
