# The two entry points the README gives first:
#   make serve  - install into .venv, build the index if missing, start the service
#   make test   - install what the tests need (Chromium included) and run the suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: install index serve test test-deps bench bench-scale bench-peers soak lint clean training-index train cv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the local CPU wheel: any other torch pulls gigabytes of CUDA.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/qa-service build --if-missing

serve: index
	$(BIN)/qa-service serve

# axe-core for the page's accessibility tests, from the npm registry (never a CDN), pinned.
AXE_CORE := axe-core@4.10.3
AXE_JS := tests/.node/node_modules/axe-core/axe.min.js

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	touch $@

$(AXE_JS): Makefile
	npm install --no-save --no-audit --no-fund --prefix tests/.node $(AXE_CORE)
	touch $@

test-deps: $(VENV)/.test-installed $(AXE_JS)

test: test-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

bench: test-deps index
	$(BIN)/python bench/bench.py

# How the service grows with the corpus (stand-in embedder): SIZES=10000,100000,1000000
SIZES ?= 10000,100000
bench-scale: install
	$(BIN)/python bench/scale.py --sizes $(SIZES)

# Rebuilds under load with every citation checked against its own index version (bounded, loopback).
soak: install
	$(BIN)/python bench/soak.py

# Peers in a virtualenv of their own, so they never enter the product's dependencies.
PEERS := .venv-peers
$(PEERS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet torch==2.13.0
	$(PEERS)/bin/pip install --quiet txtai haystack-ai sentence-transformers-haystack \
		llama-index-core llama-index-embeddings-huggingface -e .
	touch $@

bench-peers: index $(PEERS)/.installed
	$(PEERS)/bin/python bench/peers.py

lint: test-deps
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) $(PEERS) index/builds index/CURRENT test-artifacts tests/.node

# The answer model: fitted on the gold sets in training/ over the shipped sources plus the SQuAD
# article of ../shared/eval/external (converted by `qa-service squad`), in an index of its own.
SQUAD := ../shared/eval/external/squad2-dev-normans.json
TRAIN_DIR := training/.work
TRAIN_GOLD := $(wildcard training/gold/*.jsonl) $(TRAIN_DIR)/squad-normans.jsonl
TRAIN_ENV := QA_SOURCES_DIR=$(TRAIN_DIR)/sources QA_INDEX_DIR=$(TRAIN_DIR)/index

training-index: test-deps
	rm -rf $(TRAIN_DIR)/sources && mkdir -p $(TRAIN_DIR)/sources
	cp sources/* $(TRAIN_DIR)/sources/
	$(BIN)/qa-service squad $(SQUAD) --into $(TRAIN_DIR)/sources --gold $(TRAIN_DIR)/squad-normans.jsonl
	$(TRAIN_ENV) $(BIN)/qa-service build

train: training-index
	$(TRAIN_ENV) $(BIN)/qa-service train $(TRAIN_GOLD)

cv: training-index
	$(TRAIN_ENV) $(BIN)/qa-service eval --cv --apart $(TRAIN_DIR)/squad-normans.jsonl $(TRAIN_GOLD)
