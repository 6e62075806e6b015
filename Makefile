# `make run` and `make test` set up .venv from this project's own files, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench reliability clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rbee $(ARGS)

# Lint and type checks first: they take seconds and fail fast.
test: $(STAMP)
	$(BIN)/ruff check rbee_daemons rbee_tui tests
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark against its baseline in one run; rewrites docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# The reliability and security suite alone; rewrites docs/reliability.md from its records.
reliability: $(STAMP)
	rm -f .reliability/results.json
	$(BIN)/python -m pytest tests/reliability $(PYTEST_ARGS); status=$$?; \
	$(BIN)/python scripts/render_reliability.py; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check rbee_daemons rbee_tui tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
