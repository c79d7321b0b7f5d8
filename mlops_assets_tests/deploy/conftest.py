"""Reusable real-service fixtures for the production profile (deploy/): PostgreSQL, an MLflow
tracking server on it, a Dagster deployment on PostgreSQL storage, and Prometheus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_assets_tests.deploy import services
from mlops_assets_tests.live_server import free_port


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.Postgres]:
    if not (services.PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL 15 is not installed ({services.PG_BIN}/initdb is absent)")
    server, stop = services.start_postgres()
    yield server
    stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory) -> Iterator[str]:
    """The tracking server's URL; its store is database `mlflow`, artifacts served by itself."""
    postgres.create_database("mlflow")
    url, service = services.start_mlflow_server(
        postgres.url("mlflow"), tmp_path_factory.mktemp("mlflow-server")
    )
    yield url
    service.stop()


@pytest.fixture(scope="module")
def dagster_deployment(postgres, mlflow_server, tmp_path_factory) -> Iterator:
    """Code server, daemon and webserver on deploy/dagster.yaml with database `dagster_<n>`;
    the pipeline's data dir is a temp folder, it tracks to `mlflow_server`, publishes bundles
    to its artifacts and reads the replicas' logs from a folder they share (MLOPS_LOGS_DIR)."""
    root = tmp_path_factory.mktemp("dagster-deployment")
    database = f"dagster_{root.name.replace('-', '_')}"
    postgres.create_database(database)
    env = services.dagster_env(root / "dagster_home", postgres, database, free_port())
    env.update(
        MLOPS_DATA_DIR=str(root / "data"),
        MLFLOW_TRACKING_URI=mlflow_server,
        MLOPS_MODELS_URL=services.models_url(mlflow_server),  # bundles and drift.json too
        MLOPS_LOGS_DIR=str(root / "shared-logs"),  # the mlops-logs volume of compose.yaml
    )
    deployment = services.start_dagster(root / "dagster_home", env)
    yield deployment
    deployment.stop()


@pytest.fixture
def prometheus(tmp_path) -> Iterator:
    """start(targets, rule_files=()) -> URL of a real Prometheus scraping those host:port
    targets; all are stopped at the end of the test."""
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    started: list[services.Service] = []

    def start(targets: list[str], rule_files: list[Path] = ()) -> str:
        url, service = services.start_prometheus(
            targets, tmp_path / f"prometheus{len(started)}", rule_files
        )
        started.append(service)
        return url

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def replicas(dagster_deployment, mlflow_server, tmp_path_factory) -> Iterator[list[str]]:
    """Two prediction servers reading models from the tracking server's artifacts, each with a
    data dir of its own; both write their logs to the folder the pipeline reads them from."""
    root = tmp_path_factory.mktemp("replicas")
    models = services.models_url(mlflow_server)
    logs_dir = Path(dagster_deployment.env["MLOPS_LOGS_DIR"])
    started: list[services.Service] = []
    urls = []
    try:
        for name in ("prediction-a", "prediction-b"):
            url, service = services.start_prediction_server(name, models, logs_dir, root / name)
            started.append(service)
            urls.append(url)
        yield urls
    finally:
        for service in started:
            service.stop()
