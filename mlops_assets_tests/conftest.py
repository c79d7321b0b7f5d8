"""Shared fixtures: temporary data dirs, MLflow on a temp SQLite file, a temp Dagster instance."""

from __future__ import annotations

import gc
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_assets.settings import Settings, load_settings
from mlops_assets_tests.live_server import LiveServer, start_server

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

warnings.filterwarnings("ignore", message=".*is currently in beta.*")


def pytest_unconfigure(config) -> None:
    """Give the objects the in-process servers froze back to the garbage collector.

    The prediction server calls `gc.freeze()` once its models are loaded (serving/service.py);
    frozen objects are never collected, not even at interpreter exit, so DuckDB's nanobind
    bindings found their objects alive and printed ~50 lines of `nanobind: leaked N instances!`
    after the pytest summary. A server process exits right after, where that is harmless.
    """
    gc.unfreeze()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """A migrated MLflow SQLite store: a fresh one spends seconds on migrations, a copy does not."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def settings(tmp_path, monkeypatch, mlflow_template) -> Settings:
    """Settings for a throw-away data dir; MLflow tracks to a copy of the migrated template."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(mlflow_template, data_dir / "mlflow.db")
    monkeypatch.setenv("MLOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data_dir / 'mlflow.db'}")
    monkeypatch.delenv("MLOPS_DATASETS_DIR", raising=False)
    monkeypatch.delenv("MLOPS_LOGS_DIR", raising=False)
    for name in ("IRIS", "DIABETES", "ABALONE"):
        monkeypatch.delenv(f"MLOPS_SOURCE_{name}", raising=False)
    return load_settings()


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance on SQLite files, as `mlops build` has. The ephemeral instance shares
    one in-memory connection between threads: a build's run-watch thread reading runs while
    the run writes made SQLite answer "database table is locked"."""
    from dagster import instance_for_test

    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home), set_dagster_home=False) as dagster_instance:
        yield dagster_instance


@pytest.fixture(scope="session")
def builtin_specs():
    from mlops_assets.components.project import component_specs, component_tree

    return component_specs(component_tree())  # the defs folder's: the built-ins


@pytest.fixture
def shared_abalone() -> Path:
    path = SHARED_DATA / "abalone.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent (shared test data)")
    return path


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Start servers on fresh data dirs; all are stopped at the end of the test."""
    servers: list[LiveServer] = []

    def make(data_dir: Path | None = None, **overrides) -> LiveServer:
        server = start_server(data_dir or tmp_path / f"data{len(servers)}", **overrides)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A local S3-compatible server (moto) with an empty bucket `lake`, and the AWS_* variables
    that point DuckDB and botocore at it; nothing leaves the host. Yields a boto3 S3 client."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    bucket.create_bucket(Bucket="lake")
    yield bucket
    server.stop()


@pytest.fixture
def s3_lake(s3_endpoint, monkeypatch) -> Iterator[str]:
    """A DuckLake catalog in a throwaway PostgreSQL 15, its data path `S3_DATA_PATH` on the
    local S3 server, both set as MLOPS_LAKE_*; yields the catalog."""
    from mlops_assets_tests.deploy.services import S3_DATA_PATH, start_postgres

    postgres, stop = start_postgres()
    try:
        postgres.create_database("lake")
        catalog = f"postgres:dbname=lake host={postgres.host} port={postgres.port} user=postgres"
        monkeypatch.setenv("MLOPS_LAKE_CATALOG", catalog)
        monkeypatch.setenv("MLOPS_LAKE_DATA_PATH", S3_DATA_PATH)
        yield catalog
    finally:
        stop()
