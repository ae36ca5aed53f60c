# vmdeck: `make run` sets the host up and runs vmdeck; `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test unit integration lint typecheck bench clean-test-vms fuzz

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

# The long fuzz run (10,000 calls over the whole API); the suite runs a CI-sized one. Summary in fuzz-report.json.
fuzz:
	VMDECK_FUZZ_CALLS=$${VMDECK_FUZZ_CALLS:-10000} VMDECK_FUZZ_REPORT=$${VMDECK_FUZZ_REPORT:-fuzz-report.json} \
		$(PY) -m pytest tests/api/test_fuzz_openapi.py -q -s -p no:cacheprovider

typecheck:
	$(VENV)/bin/mypy

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
