# The single entry point. `make run` and `make test` bootstrap everything they need:
# uv (pip-installed from a hash-pinned lock when missing), the .venv, the locked dependencies.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH when present, else a private copy installed from requirements/bootstrap.lock.
UV := $(shell command -v uv 2>/dev/null || echo .bootstrap/bin/uv)
SYNCED := $(VENV)/.synced
# Tests run in parallel processes, each with databases of its own (tests/fixtures/databases.py);
# most tests wait on PostgreSQL's fsync or a subprocess, so three workers beat two cores' worth.
# The slowest tests are listed at the end: where CI's minutes go, in CI's own output.
PYTEST_ARGS ?= -n 3 --durations=25
COMPILE := $(UV) pip compile --universal --generate-hashes --python-version 3.11 --quiet

.PHONY: help run run-scaled test lint fmt typecheck lock migrate worker bench bench-http bench-webhooks bench-scaled clean

help:
	@echo "make run    start the API and the web app (/app/) with the embedded worker on"
	@echo "           http://127.0.0.1:8000 (SQLite)"
	@echo "make run-scaled  PostgreSQL + Redis: migrate, 2 API processes on :8000, 2 Celery"
	@echo "                 workers, beat, Flower on :5555 (URLs from COFFER_DATABASE_URL and"
	@echo "                 COFFER_BROKER_URL, localhost defaults); Ctrl-C stops all"
	@echo "make test   lint, type-check and run every test"
	@echo "make lint | fmt | typecheck | lock | migrate | worker | bench | bench-http | bench-webhooks | bench-scaled | clean"

.bootstrap/bin/uv: requirements/bootstrap.lock
	$(PYTHON) -m venv .bootstrap
	.bootstrap/bin/pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.lock
	@touch $@

$(SYNCED): requirements/dev.lock pyproject.toml | $(UV)
	test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --python $(BIN)/python requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation --editable .
	@touch $@

run: $(SYNCED)
	@echo "coffer: the web app is at http://127.0.0.1:8000/app/ (API under /api/v1, docs at /docs)"
	$(BIN)/coffer serve --host 127.0.0.1 --port 8000

run-scaled: $(SYNCED)
	$(BIN)/python -m coffer.devstack --api-port $(or $(API_PORT),8000) --flower-port $(or $(FLOWER_PORT),5555)

worker: $(SYNCED)
	$(BIN)/coffer worker

migrate: $(SYNCED)
	$(BIN)/coffer migrate

lint: $(SYNCED)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: $(SYNCED)
	$(BIN)/mypy

fmt: $(SYNCED)
	$(BIN)/ruff format src tests bench migrations
	$(BIN)/ruff check --fix src tests bench migrations

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(SYNCED)
	$(BIN)/python bench/ledger_throughput.py

bench-http: $(SYNCED)
	$(BIN)/python bench/http_transfers.py $(BENCH_ARGS)

bench-webhooks: $(SYNCED)
	$(BIN)/python bench/webhook_intake.py $(BENCH_ARGS)

bench-scaled: $(SYNCED)
	$(BIN)/python bench/scaled_transfers.py $(BENCH_ARGS)

lock: | $(UV)
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.lock
	$(COMPILE) pyproject.toml -o requirements/app.lock
	$(COMPILE) pyproject.toml --group dev -o requirements/dev.lock

clean:
	rm -rf $(VENV) .bootstrap .mypy_cache .pytest_cache .ruff_cache
