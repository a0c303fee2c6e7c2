# vpbx: `make run` starts the PBX in the foreground, `make test` runs the whole suite.
# Debian's Python: the one Kamailio embeds, with python3-redis.
PYTHON := /usr/bin/python3
export PYTHONDONTWRITEBYTECODE := 1

# ruff and mypy (pinned, from PyPI) live in this virtualenv; they only read the code.
LINT_VENV := var/lint-venv

.PHONY: deps lint run up down test unit component integration fuzz bench soak

deps:
	@scripts/install-deps

run: deps
	scripts/vpbx run

up: deps
	scripts/vpbx up

down:
	scripts/vpbx down

# Lint and types (settings in pyproject.toml). tests/integration has a conftest.py of its own,
# so mypy looks at it in a run of its own.
lint:
	@scripts/install-deps --lint
	$(LINT_VENV)/bin/ruff check
	$(LINT_VENV)/bin/mypy
	$(LINT_VENV)/bin/mypy tests/integration

# A lint failure fails the suite before pytest starts.
test: lint
	$(PYTHON) -m pytest tests

unit: deps
	$(PYTHON) -m pytest tests/unit

component: deps
	$(PYTHON) -m pytest tests/component

integration: deps
	$(PYTHON) -m pytest tests/integration

# The long fuzz run (make test runs a bounded one); VPBX_FUZZ_SEED=N repeats a run.
FUZZ_MESSAGES ?= 100000
FUZZ_RATE ?= 400
fuzz: deps
	VPBX_FUZZ_MESSAGES=$(FUZZ_MESSAGES) VPBX_FUZZ_RATE=$(FUZZ_RATE) $(PYTHON) -m pytest tests/integration/test_fuzz.py -q

bench: deps
	$(PYTHON) bench/run.py

# The bounded soak (make test runs a small one: tests/integration/test_soak.py); figures in
# docs/benchmarks.md. SOAK_TRANSFERS: calls of each transfer kind among SOAK_CALLS.
SOAK_CALLS ?= 10000
SOAK_TRANSFERS ?= 1000
SOAK_RATE ?= 20
soak: deps
	SOAK_CALLS=$(SOAK_CALLS) SOAK_TRANSFERS=$(SOAK_TRANSFERS) SOAK_RATE=$(SOAK_RATE) $(PYTHON) bench/soak.py
