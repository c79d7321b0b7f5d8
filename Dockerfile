# Multi-stage uv build: the dependencies are resolved from uv.lock in a build stage; the runtime
# image holds only the virtualenv, the code location and the instance config. The `serving`
# target is the prediction server alone: the base install (no `pipeline` extra: no Dagster,
# MLflow, DuckDB or pandera), the `serving/` package and `mlops_contract/`.
#
#   docker build -t mlops-assets .                                               # runtime (pipeline)
#   docker build --target serving -t mlops-serving .                             # prediction server
#   docker run -p 8000:8000 -e MLOPS_MODELS_URL=http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/models \
#       mlops-serving
#   docker run -p 3000:3000 -v $PWD/data:/data mlops-assets                      # Dagster UI + daemon
#   docker run -p 8000:8000 -v $PWD/data:/data mlops-assets mlops serve --host 0.0.0.0
#   docker run -p 4000:4000 mlops-assets dagster code-server start -h 0.0.0.0 -p 4000 \
#       -m mlops_assets.definitions                                              # code location only
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-default-groups --extra pipeline --no-install-project
COPY mlops_assets ./mlops_assets
COPY mlops_contract ./mlops_contract
COPY serving ./serving
RUN uv sync --locked --no-default-groups --extra pipeline --no-editable

FROM python:3.11-slim AS serving-build
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# the project itself is not installed (its wheel holds the pipeline too): serving/ and the
# contract package it imports are copied
RUN uv sync --locked --no-default-groups --no-dev --no-install-project

FROM python:3.11-slim AS serving
RUN useradd --create-home --uid 1000 mlops
WORKDIR /app
COPY --from=serving-build /app/.venv /app/.venv
COPY mlops_contract ./mlops_contract
COPY serving ./serving
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONPATH=/app \
    MLOPS_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
RUN mkdir -p /data && chown -R mlops /data
USER mlops
EXPOSE 8000
CMD ["python", "-m", "serving", "--host", "0.0.0.0", "--port", "8000"]

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 1000 mlops
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# pyproject.toml: its [tool.dg.project] is how the code location finds its defs folder
# (`dg.load_from_defs_folder` looks in the parents of the installed package, /app among them)
COPY dagster.yaml workspace.yaml pyproject.toml ./
ENV PATH=/app/.venv/bin:$PATH \
    DAGSTER_HOME=/app/dagster_home \
    MLOPS_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
RUN mkdir -p "$DAGSTER_HOME" /data && cp dagster.yaml "$DAGSTER_HOME/" \
    && chown -R mlops "$DAGSTER_HOME" /data
USER mlops
EXPOSE 3000 4000 8000
CMD ["dagster", "dev", "--host", "0.0.0.0", "--port", "3000", "-w", "workspace.yaml"]
