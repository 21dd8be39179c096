# EdgeShare: `make demo` and `make test` are all a newcomer needs.
# Installing is idempotent: stamps record what was installed from which lock file.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
BROWSER_STAMP := $(VENV)/.browser
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Keep brownie's data folder (network config, compiler cache) out of the way of tests.
PYTEST_ARGS ?=

.PHONY: help install install-browser demo test lint fuzz bench compile clean

help:
	@echo "make demo     install what is missing, run the EdgeShare story on a local anvil"
	@echo "make test     install what is missing, run lint and the whole test suite"
	@echo "make lint     ruff (lint + format check) and mypy --strict on src/"
	@echo "make install-browser  Debian's chromium, for the HTML report test (make test does it)"
	@echo "make fuzz     the accounting state machine, long profile"
	@echo "make bench    gas vs the EVM floor, flat cost at scale, throughput; writes bench/"
	@echo "make compile  brownie compile"
	@echo "make clean    remove build output (keeps .venv and node_modules)"

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.lock pyproject.toml src/edgeshare/_brownie_vyper04.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m edgeshare._brownie_vyper04
	@touch $@

$(NODE_STAMP): package-lock.json | $(PY_STAMP)
	npm ci --no-audit --no-fund --loglevel=error
	ln -sf "$(CURDIR)/$$(ls -d node_modules/@foundry-rs/anvil-*/bin/anvil | head -n 1)" $(BIN)/anvil
	@touch $@

# The HTML report is checked in a real headless browser: Debian's chromium.
install-browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): | $(PY_STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (for the HTML report test)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@touch $@

demo: install
	$(BIN)/edgeshare demo

test: install install-browser lint
	EDGESHARE_REQUIRE_BROWSER=1 $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy

fuzz: install
	EDGESHARE_FUZZ=long $(BIN)/pytest tests/fuzz -p no:randomly $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

compile: install
	$(BIN)/brownie compile

clean:
	rm -rf build reports/brownie .mypy_cache .ruff_cache
