# oci-llm-stack: `make preview` shows the dev stack's plan offline; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK ?= dev

.PHONY: help install preview plan test lint typecheck unit clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv with the llmstack script and the test tools

preview: $(STAMP) ## the dev stack's plan, offline (STACK=staging|prod for the others)
	$(BIN)/llmstack plan --stack $(STACK)

plan: preview

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on the project's packages
	$(BIN)/mypy components llmstack serving __main__.py $(wildcard policy/*.py)

unit: $(STAMP) ## the pytest suite
	$(BIN)/pytest -q

test: lint typecheck unit ## everything CI runs

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
