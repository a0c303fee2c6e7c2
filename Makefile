# vpbx: `make run` starts the PBX in the foreground, `make test` runs the whole suite.
# Debian's Python: the one Kamailio embeds, with python3-redis.
PYTHON := /usr/bin/python3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: deps run up down test unit component integration fuzz bench

deps:
	@scripts/install-deps

run: deps
	scripts/vpbx run

up: deps
	scripts/vpbx up

down:
	scripts/vpbx down

test: deps
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
