"""The scale-out profile on real services: runs submitted through the webserver execute their
steps on two Celery workers (dagster-celery, Redis from Debian's package as the broker), and
write one DuckLake warehouse (catalog in PostgreSQL, data in a shared folder). The workers are
separate processes with their own working folder, data folder and Dagster home; they share only
what separate machines would: PostgreSQL (Dagster's storage, the lake's catalog), the lake's
folder, the broker and the MLflow tracking server."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.defs.resources import warehouse_for
from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import load_spec
from mlops_assets.lib.warehouse import scalar
from mlops_assets.settings import builtin_spec_path, load_settings
from mlops_assets_tests.deploy import services
from mlops_assets_tests.deploy.test_production_profile import (
    IMPLICIT_ASSET_JOB,
    LOCATION,
    REPOSITORY,
    dynamic_partitions,
    wait_for,
    wait_for_run,
)
from mlops_assets_tests.live_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

WORKER_CONFIG = services.DEPLOY_DIR / "celery-worker.yaml"
DATASETS = {"iris": 150, "diabetes": 442}  # raw rows of each built-in source


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    workdir, port = tmp_path_factory.mktemp("redis"), free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    service = services.start_service(
        "redis", command, services.base_env(), workdir, lambda: "Ready to accept" in log(workdir)
    )
    yield f"redis://127.0.0.1:{port}/0"
    service.stop()


def log(workdir: Path, name: str = "redis") -> str:
    path = workdir / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def worker_env(shared: dict[str, str], folder: Path) -> dict[str, str]:
    """A worker's own Dagster home (the production instance config) and data folder."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(services.DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    return {**shared, "DAGSTER_HOME": str(home), "MLOPS_DATA_DIR": str(folder / "data")}


def start_worker(name: str, env: dict[str, str], folder: Path) -> services.Service:
    command = [str(services.VENV_BIN / "dagster-celery"), "worker", "start",
               "-A", "dagster_celery.app", "-y", str(WORKER_CONFIG), "-n", name,
               "--", "--concurrency=1"]  # fmt: skip
    return services.start_service(
        name, command, env, folder, lambda: " ready." in log(folder, name), timeout=180
    )


@pytest.fixture(scope="module")
def scaleout(postgres, mlflow_server, broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("scaleout")
    for database in ("dagster_scaleout", "lake_scaleout"):
        postgres.create_database(database)
    lake = f"postgres:dbname=lake_scaleout host={postgres.host} port={postgres.port} user=postgres"
    home = root / "dagster_home"
    env = services.dagster_env(home, postgres, "dagster_scaleout", free_port())
    env.update(
        MLFLOW_TRACKING_URI=mlflow_server,
        MLOPS_MODELS_URL=services.models_url(mlflow_server),
        MLOPS_LAKE_CATALOG=lake,
        MLOPS_LAKE_DATA_PATH=f"{root / 'lake'}/",
        MLOPS_CELERY_BROKER=broker,
        MLOPS_DATA_DIR=str(root / "data"),
    )
    deployment = services.start_dagster(home, env)
    workers = []
    try:
        # the pool holds one slot for the DuckDB file; a DuckLake takes writers at once
        subprocess.run([str(services.VENV_BIN / "dagster"), "instance", "concurrency", "set",
                        "duckdb", "4"], env=env, check=True, capture_output=True)  # fmt: skip
        for name in ("worker1", "worker2"):
            folder = root / name
            workers.append(start_worker(name, worker_env(env, folder), folder))
        yield deployment, workers, env
    finally:
        for worker in workers:
            worker.stop()
        deployment.stop()


def submit_all(deployment, postgres) -> dict[str, str]:
    """One run per data set, all submitted before any finishes, as a user clicking
    "Materialize all" on each data set would; returns run ids by data set."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    database = deployment.env["DAGSTER_PG_DB"]
    runs = {}
    for ds in DATASETS:
        spec = load_spec(builtin_spec_path(ds))
        partition = initial_partition(spec)
        name = files_partitions(spec).name
        wait_for(lambda n=name, p=partition: p in dynamic_partitions(postgres, database, n), 120,
                 f"{ds}'s source partition registered by the landing sensor")  # fmt: skip
        runs[ds] = client.submit_job_execution(
            IMPLICIT_ASSET_JOB,
            repository_location_name=LOCATION,
            repository_name=REPOSITORY,
            asset_selection=[asset.key for asset in dataset_assets(spec)],
            tags={"mlops/trigger": "scale-out test", "dagster/partition": partition},
        )
    return runs


def test_runs_execute_their_steps_on_two_celery_workers_into_one_lake(
    scaleout, postgres, monkeypatch
):
    deployment, workers, env = scaleout
    started = time.monotonic()
    runs = submit_all(deployment, postgres)
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    statuses = {ds: wait_for_run(client, run_id, 1500) for ds, run_id in runs.items()}
    elapsed = time.monotonic() - started
    logs = {worker.name: worker.log_tail(10**7) for worker in workers}
    assert statuses == dict.fromkeys(DATASETS, DagsterRunStatus.SUCCESS), logs
    for name, text in logs.items():
        assert "succeeded" in text, f"{name} executed no step:\n{text[-3000:]}"
        assert "Could not set lock" not in text
    for key in ("MLOPS_LAKE_CATALOG", "MLOPS_LAKE_DATA_PATH"):
        monkeypatch.setenv(key, env[key])
    with warehouse_for(load_settings()).read_connection() as con:
        for ds, rows in DATASETS.items():
            raw, valid, quarantined = (
                scalar(con, f"SELECT count(*) FROM {ds}.{name}")
                for name in ("raw", "validated", "quarantine")
            )
            assert raw == rows == valid + quarantined
    print(f"two data sets on two Celery workers: {elapsed:.0f} s")
