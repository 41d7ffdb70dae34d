PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# pyproject.toml holds version ranges (for users of the library); make installs the exact,
# hash-checked versions of requirements/*.lock, so every checkout gets the same environment.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet --custom-compile-command "make lock"

.PHONY: run test lint typecheck pytest bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What running needs, nothing else (no test tools, no ray).
$(RUN_STAMP): requirements/run.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/run.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m deleverage.world.warmup  # compile and cache the numba kernels once (the world's too)
	touch $@

# Running plus the test and ray extras.
$(TEST_STAMP): requirements/test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m deleverage.world.warmup  # compile and cache the numba kernels once (the world's too)
	touch $@ $(RUN_STAMP)

## make run: set up what running needs and run the main job on the built-in default scenario
run: $(RUN_STAMP)
	$(BIN)/deleverage run

## make test: set everything up, then lint, type-check and run every test (slow ones too)
test: lint typecheck pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# One pytest process per core (pytest-xdist; `make test PYTEST_WORKERS=0` runs all in one).
# --dist loadscope keeps each test module in one process, so its module-scoped fixtures
# (servers, simulated days) are built once.
PYTEST_WORKERS ?= auto
pytest: $(TEST_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadscope

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/mark_update.py
	$(BIN)/python benchmarks/liquidation_step.py
	$(BIN)/python benchmarks/cascade_day.py

## make lock: re-resolve requirements/*.lock from pyproject's ranges (keeps pins that still fit;
## add --upgrade to LOCK to move them)
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(LOCK) -o requirements/run.lock
	$(LOCK) --extra test --extra ray -o requirements/test.lock

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
