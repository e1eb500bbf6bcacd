# The two commands a newcomer needs: `make dev` and `make test`. Everything bootstraps from python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# The wire-model files the client distribution ships as committed copies of common/: the
# common/models package and common/schedule_models.py (client/python/ips_client/ mirrors them).
CLIENT_MODELS := $(sort $(wildcard common/models/*.py)) common/schedule_models.py
CLIENT_DIR := client/python/ips_client
# The venv's console scripts (ips, temporal, kubectl, ...) without activating it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: dev test test-fast lint fmt bench clean install api worker sim test-api client-models

$(STAMP): pyproject.toml client/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -e ./client/python
	@touch $(STAMP)

install: $(STAMP)

dev: $(STAMP) ## run the whole stack: Temporal dev server, kubesim, worker, API
	$(BIN)/ips dev

api: $(STAMP)
	$(BIN)/ips api

worker: $(STAMP)
	$(BIN)/ips worker

sim: $(STAMP)
	$(BIN)/ips sim

test: $(STAMP) ## the whole suite: unit, integration, chaos, bench smoke
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the unit tests only, no servers (under a minute): while you edit
	$(BIN)/python -m pytest --fast $(PYTEST_ARGS)

test-api: ## the original project's curl+jq script, against a running `make dev`
	./test-api.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@for f in $(CLIENT_MODELS); do cmp -s $$f $(CLIENT_DIR)/$${f#common/} \
	  || { echo "$(CLIENT_DIR)/$${f#common/} differs from $$f: make client-models"; exit 1; }; done
	@diff -rq -x __pycache__ common/models $(CLIENT_DIR)/models \
	  || { echo "$(CLIENT_DIR)/models/ holds other files than common/models/: make client-models"; exit 1; }

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(MAKE) client-models

client-models: ## copy the wire models into the client package (plain files, not symlinks)
	rm -rf $(CLIENT_DIR)/models && mkdir -p $(CLIENT_DIR)/models
	for f in $(CLIENT_MODELS); do cp $$f $(CLIENT_DIR)/$${f#common/}; done

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .ips .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
