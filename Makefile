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
POSTGRES_STAMP := $(VENV)/.postgres
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Keep brownie's data folder (network config, compiler cache) out of the way of tests.
PYTEST_ARGS ?=

.PHONY: help install install-browser install-postgres demo test lint fuzz bench compile clean web

help:
	@echo "make demo     install what is missing, run the EdgeShare story on a local anvil"
	@echo "make test     install what is missing, run lint and the whole test suite"
	@echo "make lint     ruff (lint + format check) and mypy --strict on src/"
	@echo "make install-browser  Debian's chromium, for the HTML report and web app tests (make test does it)"
	@echo "make install-postgres Debian's postgresql, for the index database tests (make test does it)"
	@echo "make fuzz     the accounting state machine, long profile"
	@echo "make bench    gas vs the EVM floor, flat cost at scale, throughput; writes bench/"
	@echo "make compile  brownie compile"
	@echo "make artifacts  compile contracts/ into the package data (src/edgeshare/compiled)"
	@echo "make dist     build dist/edgeshare-*.whl (compiled contracts inside; no Vyper needed)"
	@echo "make docs     API reference with pdoc, into docs/api/"
	@echo "make web      rebuild the web app's front end into src/edgeshare/web/static (committed)"
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

# The HTML report and the web app are checked in a real headless browser: Debian's chromium.
install-browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): | $(PY_STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (for the browser tests)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@touch $@

# The index is tested against a real PostgreSQL server: Debian's postgresql.
install-postgres: $(POSTGRES_STAMP)

$(POSTGRES_STAMP): | $(PY_STAMP)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql (for the index database tests)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }
	@touch $@

demo: install
	$(BIN)/edgeshare demo

test: install install-browser install-postgres lint
	EDGESHARE_REQUIRE_BROWSER=1 EDGESHARE_REQUIRE_POSTGRES=1 $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy

fuzz: install
	EDGESHARE_FUZZ=long $(BIN)/pytest tests/fuzz -p no:randomly $(PYTEST_ARGS)

bench: install install-postgres
	$(BIN)/python bench/run.py

compile: install
	$(BIN)/brownie compile

# The compiled ABIs and bytecode ship in the wheel as package data and are committed
# (see src/edgeshare/artifacts.py for why); tests/unit/test_artifacts.py fails when they
# are stale. Rebuild them after editing contracts/ and commit the result.
.PHONY: artifacts dist docs
artifacts: $(PY_STAMP)
	$(BIN)/python -m edgeshare._build_artifacts

# A wheel from the working tree, artifacts rebuilt first. setuptools builds in build/lib:
# it is cleared so a module deleted from src/ cannot ride along from an earlier build.
dist: artifacts
	rm -rf build/lib build/bdist.* dist
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls dist/edgeshare-*.whl

# The public modules only (not edgeshare._*); docs/api/ is generated, not committed.
docs: $(PY_STAMP)
	rm -rf docs/api
	$(BIN)/pdoc --docformat google --output-directory docs/api edgeshare '!edgeshare\._.*'

clean:
	rm -rf build reports/brownie .mypy_cache .ruff_cache

# The web app's front end, built into the package (src/edgeshare/web/static/; committed).
web:
	@test -d node_modules/esbuild || $(MAKE) $(NODE_STAMP)
	node web/build.mjs
