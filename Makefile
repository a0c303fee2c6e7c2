# vpbx: `make run` starts the PBX in the foreground, `make test` runs the whole suite.
# Debian's Python: the one Kamailio embeds, with python3-redis.
PYTHON := /usr/bin/python3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: deps run up down test unit integration bench

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

integration: deps
	$(PYTHON) -m pytest tests/integration

bench: deps
	$(PYTHON) bench/run.py
