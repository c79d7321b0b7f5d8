# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   build every data set, then serve predictions and open the Dagster UI
#   make test   the whole test suite (fast and slow tests), as CI runs it; the benchmark smoke
#               tests (they need the `bench` dependency group) run apart: make test-bench
PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: setup setup-bench demo test test-bench test-fast lint format build serve clean

# bootstrap uv into .tools/ when it is not installed (PyPI only, no installer script)
.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

setup: $(UV)
	$(UV) sync --locked

# `setup` has just synced: `uv run` need not check the environment again (~0.7 s, the bytecode)
DEMO_ARGS ?=
demo: setup
	$(UV) run --no-sync mlops demo --keep-going $(DEMO_ARGS)

build: setup
	$(UV) run mlops build

serve: setup
	$(UV) run mlops serve

test: setup
	$(UV) run pytest -m "slow or not slow" --ignore=mlops_assets_tests/bench

setup-bench: $(UV)
	$(UV) sync --locked --group bench

test-bench: setup-bench
	$(UV) run --group bench pytest -m "slow or not slow" mlops_assets_tests/bench

test-fast: setup
	$(UV) run pytest

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: setup
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

# Everything the pipeline, the server and MLflow generate (see .gitignore). Kept: what you put
# there yourself, i.e. data/landing, data/labels and data/score (files you dropped) and .env, your
# own configuration (mlops only adds a DAGSTER_HOME line, which points at the .dagster_home the
# next `mlops` run recreates).
clean:
	rm -rf .dagster_home .tmp_dagster_home_* mlruns mlartifacts \
		data/warehouse.duckdb data/warehouse.duckdb.wal data/mlflow.db data/mlflow.db.lock \
		data/mlflow.db.creating data/mlartifacts data/models data/models-cache data/sources \
		data/predictions data/landed data/logs data/feedback data/observations
	rm -f data/optuna.db data/optuna.db-wal data/optuna.db-shm
