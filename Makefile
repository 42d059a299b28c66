# Sirene Mirror: developer entry points. Every target works on a fresh machine:
# `install` creates .venv and installs the package with its dev tools.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
SCALE  ?= 100000
DEMO_SCALE ?= 20000
# Test workers: one per core (pytest-xdist); --dist loadgroup keeps the files of tests/conftest.py's
# ONE_WORKER_FILES on one worker each (the Spark tests: one SparkSession for all of them).
JOBS   ?= auto

# Bytecode caches on: an environment that sets PYTHONDONTWRITEBYTECODE (as some CI images do) makes every
# test worker re-rewrite every test module's asserts and every `mirror` subprocess recompile the package.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install test test-fast lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The full suite (what CI runs).
test: install
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup

# Everything but the slow end-to-end tests: under a minute.
test-fast: install
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup -m "not slow"

lint: install
	$(BIN)/ruff check mirror tests benchmarks
	$(BIN)/ruff format --check mirror tests benchmarks

demo: install
	$(BIN)/python -m mirror.synthetic.demo --scale $(DEMO_SCALE)

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)  # benchmarks.http's load generator (Debian)
	$(BIN)/python -m benchmarks.bench --scale $(SCALE)
	$(BIN)/python -m benchmarks.serving --scale $(SCALE)
	$(BIN)/python -m benchmarks.http --scale $(SCALE) --during-update

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
