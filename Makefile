# Everything a fresh machine needs, from only Python 3.11+ and pip.
#   make demo   run the full oversight refresh on the embedded default data (VERBOSE=1: full logs)
#   make test   ruff + the whole pytest suite (2 workers; PYTEST_WORKERS=0 for one process)
#   make dev    Dagster UI (dagster dev) on http://127.0.0.1:3000
#   make bench  end-to-end refresh benchmark (BENCH_ARGS="--scales 1 4" for a subset)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from PATH, else the copy pip installs into $(PYTHON) (see the `uv` target).
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen --no-sync

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_LINK_MODE ?= copy

VENV_STAMP := .venv/.synced
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := dbt_project/dbt_project.yml dbt_project/profiles.yml \
	$(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null)

.PHONY: help setup uv browser demo test bench lint dev clean

help:
	@echo "make demo   - full oversight refresh on sample data (no network, no server)"
	@echo "make test   - ruff + pytest (the whole suite)"
	@echo "make dev    - Dagster UI on http://127.0.0.1:3000"
	@echo "make bench  - end-to-end refresh benchmark against the DuckDB floor (large, 1x/4x/16x)"
	@echo "make clean  - remove generated state (var/, .dagster_home/, dbt target/)"

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

# Bytecode is compiled at install: this environment sets PYTHONDONTWRITEBYTECODE, and without
# .pyc files every process start pays 1-4 s of imports (dagster_dbt, great_expectations).
$(VENV_STAMP): pyproject.toml uv.lock | uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

# Parsed with the pipeline's dbt (`smo-dbt`, orchestration/lib/dbt_cli.py), whose saved parse
# state holds for a warehouse at any path with the default's file name: every build, test and
# benchmark then skips a full re-parse (~8 s).
$(MANIFEST): $(VENV_STAMP) $(DBT_SOURCES)
	SMO_WAREHOUSE_PATH="$${SMO_WAREHOUSE_PATH:-$(CURDIR)/var/warehouse.duckdb}" \
		$(RUN) dagster-dbt project prepare-and-package --file orchestration/lib/dbt.py

setup: $(MANIFEST)
	@$(RUN) python -m orchestration.instance >/dev/null

demo: setup
	@$(RUN) python -m orchestration.demo $(if $(VERBOSE),--verbose)

lint: $(VENV_STAMP)
	$(RUN) ruff check .
	$(RUN) ruff format --check .

# Debian's Chromium for the report's browser test, installed from the distribution's package
# registry where this runs as root with apt-get (CI); elsewhere that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Debian's chromium for the report's browser test..."; \
			( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) \
				>/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"; \
		else echo "chromium not installed (needs root and apt-get): the browser test will skip"; fi; }

# Both cores: PYTEST_WORKERS pytest-xdist workers (0: one process), each module whole to one
# worker, the slowest modules first (tests/conftest.py); property tests capped (the conftest's
# make-test hypothesis profile); temporary folders in memory where /dev/shm exists
# (TEST_TMPDIR): Dagster's event log and DuckDB sync to disk at every commit.
PYTEST_WORKERS ?= 2
TEST_TMPDIR ?= $(if $(wildcard /dev/shm/.),/dev/shm)
test: setup lint browser
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR)) $(RUN) pytest -n $(PYTEST_WORKERS) \
		--dist loadscope --no-loadscope-reorder --hypothesis-profile=make-test

# Generates the portfolios once (var/bench/, ~7 min), then ~40 min on 2 cores (3 alternating
# refresh/floor pairs per scale; BENCH_ARGS="--reps 1" for a quick look); results in
# bench/results/ (git-ignored).
bench: setup
	$(RUN) python -m bench.refresh $(BENCH_ARGS)

# The code location comes from pyproject's [tool.dg.project]. `dagster dev` advises `dg dev`,
# which needs dagster-dg-cli (not a dependency): that one advice is silenced.
dev: setup
	$(RUN) python -W "ignore:Function \`dev_command\` is superseded" -m dagster dev

clean:
	rm -rf var .dagster_home dbt_project/target dbt_project/logs $(VENV_STAMP)
