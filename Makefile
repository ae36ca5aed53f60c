# vmdeck: `make run` sets the host up and runs vmdeck; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test unit integration lint typecheck bench clean-test-vms

setup:
	bash scripts/setup-host.sh

run: setup
	bash scripts/run-demo.sh

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15

unit:
	$(PY) -m pytest tests/unit -q

integration:
	$(PY) -m pytest tests/integration -q

bench: setup
	$(PY) bench/run.py

typecheck:
	$(VENV)/bin/mypy

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
