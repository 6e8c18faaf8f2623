# The two commands of the README: `make run` (the service) and `make test` (the whole suite).
VENV ?= $(or $(DISPATCH_RL_VENV),$(HOME)/.cache/dispatch-rl/venv)
export DISPATCH_RL_VENV := $(VENV)
BIN := $(VENV)/bin

.PHONY: setup run demo test lint bench schemas

setup:
	@bash scripts/setup.sh

## the service: starts a local Kafka broker when DISPATCH_RL_BOOTSTRAP_SERVERS is unset
run: setup
	$(BIN)/dispatch-rl run

## the service plus sample days published and their results printed
demo: setup
	$(BIN)/dispatch-rl demo

## the whole test suite, against a real Kafka broker
test:
	@WITH_TEST_TOOLS=1 bash scripts/setup.sh
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: setup
	$(BIN)/python bench/optimize_latency.py

schemas: setup
	$(BIN)/python -m schemas.jsonschema
