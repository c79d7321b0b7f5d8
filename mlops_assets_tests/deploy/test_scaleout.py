"""The scale-out profile on real services: runs submitted through the webserver and by the
landing sensor execute their steps on two Celery workers (dagster-celery, Redis from Debian's
package as the broker), and write one DuckLake warehouse (catalog in PostgreSQL, data in a
shared folder). The workers are separate processes with their own working folder, data folder
and Dagster home; they share only what separate machines would: PostgreSQL (Dagster's storage,
the lake's catalog), the lake's folder, the landing folder, the broker and the MLflow server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from dagster import AssetKey, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from mlflow.tracking import MlflowClient

from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.defs.resources import warehouse_for
from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import load_spec
from mlops_assets.settings import builtin_spec_path, load_settings
from mlops_assets_tests.deploy import services
from mlops_assets_tests.deploy.test_production_profile import (
    IMPLICIT_ASSET_JOB,
    LOCATION,
    REPOSITORY,
    dynamic_partitions,
    run_events,
    wait_for,
    wait_for_run,
)
from mlops_assets_tests.live_server import free_port
from mlops_assets_tests.serving.conftest import IRIS_RECORD
from mlops_assets_tests.synthetic import drop_file, iris_like, iris_like_specs, iris_source

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

WORKERS = ("worker1", "worker2")
# raw rows of each data set's own source; abalone's needs the network, so the third data set is
# an iris-like spec from MLOPS_DATASETS_DIR
DATASETS = {"iris": 150, "diabetes": 442, "petals": 150}
EXTRA_SPEC = "petals"
# four files dropped into landing/iris/: each its own partition of LANDED_ROWS rows, n of them
# with a species the spec does not allow (quarantined)
LANDED = {f"iris-part{n}.csv": n for n in range(1, 5)}
LANDED_ROWS = 120  # iris's `min_rows` gate: 100 valid rows per partition
BIG_FILE, BIG_ROWS = "iris-big.csv", 1_500_000  # its raw step lasts long enough to be killed
# the test's workers hand a dead worker's task on after this, not deploy's 1800 s; every step
# here takes far less
VISIBILITY_TIMEOUT = 45
LOCK_ERRORS = ("Could not set lock", "database is locked", "Conflicting lock")


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    url, service = services.start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    service.stop()


def worker_config(folder: Path) -> Path:
    """deploy/celery-worker.yaml with the test's shorter visibility timeout."""
    config = yaml.safe_load((services.DEPLOY_DIR / "celery-worker.yaml").read_text())
    transport = config["execution"]["config"]["config_source"]["broker_transport_options"]
    transport["visibility_timeout"] = VISIBILITY_TIMEOUT
    path = folder / "celery-worker.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def worker_env(shared: dict[str, str], folder: Path, landing: Path) -> dict[str, str]:
    """A worker's own Dagster home (the production instance config) and data folder; its
    landing folder is the deployment's, as a shared mount would be."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(services.DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    (folder / "data").mkdir()
    (folder / "data" / "landing").symlink_to(landing)
    return {**shared, "DAGSTER_HOME": str(home), "MLOPS_DATA_DIR": str(folder / "data")}


def start_worker(name: str, env: dict[str, str], folder: Path) -> services.Service:
    return services.start_celery_worker(name, env, folder, worker_config(folder))


def spec_of(ds: str, specs_dir: Path):
    extra = specs_dir / f"{ds}.yaml"
    return load_spec(extra if extra.exists() else builtin_spec_path(ds))


def write_extra_spec(specs_dir: Path) -> None:
    iris_like_specs(specs_dir, [EXTRA_SPEC])


def drop_partitions(landing: Path, source: pd.DataFrame) -> None:
    for seed, (name, bad) in enumerate(LANDED.items()):
        drop_file(landing / "iris", name, iris_like(source, LANDED_ROWS, seed, bad))


@pytest.fixture(scope="module")
def scaleout(postgres, mlflow_server, broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("scaleout")
    for database in ("dagster_scaleout", "lake_scaleout"):
        postgres.create_database(database)
    lake = f"postgres:dbname=lake_scaleout host={postgres.host} port={postgres.port} user=postgres"
    write_extra_spec(root / "specs")
    landing = root / "data" / "landing"
    # the four files wait before the daemon starts: its landing sensor's first tick registers
    # them and requests their runs while the test submits the data sets' own
    drop_partitions(landing, iris_source())
    home = root / "dagster_home"
    env = services.dagster_env(home, postgres, "dagster_scaleout", free_port())
    env.update(
        MLFLOW_TRACKING_URI=mlflow_server,
        MLOPS_MODELS_URL=services.models_url(mlflow_server),
        MLOPS_LAKE_CATALOG=lake,
        MLOPS_LAKE_DATA_PATH=f"{root / 'lake'}/",
        MLOPS_CELERY_BROKER=broker,
        MLOPS_DATA_DIR=str(root / "data"),
        MLOPS_DATASETS_DIR=str(root / "specs"),
    )
    deployment = services.start_dagster(home, env)
    workers = []
    try:
        # the pool holds one slot for the DuckDB file; a DuckLake takes writers at once
        subprocess.run([str(services.VENV_BIN / "dagster"), "instance", "concurrency", "set",
                        "duckdb", "4"], env=env, check=True, capture_output=True)  # fmt: skip
        # the test waits for the runs it starts; a retrain of iris after each landed file
        # (the automation sensor's) would only compete with them for the two workers
        # (through the workspace the daemon loads: a sensor's state is kept per code location)
        workspace = str(services.DEPLOY_DIR / "workspace.yaml")
        stop = [str(services.VENV_BIN / "dagster"), "sensor", "stop", "automation", "-w", workspace]
        subprocess.run(stop, env=env, check=True, capture_output=True)
        for name in WORKERS:
            folder = root / name
            workers.append(start_worker(name, worker_env(env, folder, landing), folder))
        yield deployment, workers, env, root
    finally:
        for worker in workers:
            worker.stop()
        deployment.stop()


def submit_datasets(deployment, postgres, specs_dir: Path) -> dict[str, str]:
    """One run per data set, all submitted before any finishes, as a user clicking
    "Materialize all" on each data set would; returns run ids by data set."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    database = deployment.env["DAGSTER_PG_DB"]
    runs = {}
    for ds in DATASETS:
        spec = spec_of(ds, specs_dir)
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


def landing_runs(postgres, database: str) -> dict[str, str]:
    """Run ids of the landing sensor's runs, by landed file name."""
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute("select value, run_id from run_tags where key = 'mlops/landing_file'")
        found = {Path(path).name: run_id for path, run_id in cursor.fetchall()}
    connection.close()
    return found


def step_events(postgres, database: str, run_id: str, step_key: str) -> list[tuple[str, str]]:
    """(event type or None for a log line, event text) of one step of a run, in order."""
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "select dagster_event_type, event from event_logs where run_id = %s and step_key = %s "
            "order by id",
            (run_id, step_key),
        )
        rows = cursor.fetchall()
    connection.close()
    return rows


def service_logs(deployment, workers) -> dict[str, str]:
    return {s.name: s.log_tail(10**8) for s in [*deployment.services, *workers]}


def partition_counts(env: dict[str, str], monkeypatch) -> dict[tuple[str, str], tuple]:
    """(raw, validated, quarantined) rows of every partition of every data set, read from the
    lake as a user would."""
    for key in ("MLOPS_LAKE_CATALOG", "MLOPS_LAKE_DATA_PATH"):
        monkeypatch.setenv(key, env[key])
    counts = {}
    with warehouse_for(load_settings()).read_connection() as con:
        for ds in DATASETS:
            for index, name in enumerate(("raw", "validated", "quarantine")):
                query = f"SELECT _partition, count(*) FROM {ds}.{name} GROUP BY ALL"
                for partition, rows in con.execute(query).fetchall():
                    counts.setdefault((ds, partition), [0, 0, 0])[index] = rows
    return {key: tuple(value) for key, value in counts.items()}


@pytest.fixture(scope="module")
def builds(scaleout, postgres) -> dict:
    """Three data sets submitted through the webserver while the landing sensor's four runs
    of iris's landed files execute; every run waited for. Returns run statuses by name and the
    wall time."""
    deployment, _, env, root = scaleout
    started = time.monotonic()
    runs = submit_datasets(deployment, postgres, root / "specs")
    database = env["DAGSTER_PG_DB"]
    wait_for(lambda: set(landing_runs(postgres, database)) >= set(LANDED), 120,
             "the landing sensor's runs of the four files")  # fmt: skip
    runs.update(landing_runs(postgres, database))
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    statuses = {name: wait_for_run(client, run_id, 1500) for name, run_id in runs.items()}
    elapsed = time.monotonic() - started
    print(f"\n3 data sets + 4 partitions of iris on two Celery workers: {elapsed:.0f} s")
    for name, status in statuses.items():  # what a failed run said, for the failure message
        if status != DagsterRunStatus.SUCCESS:
            print(f"{name}: {step_failures(postgres, database, runs[name])}")
    return statuses


def step_failures(postgres, database: str, run_id: str) -> list[str]:
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "select event from event_logs where run_id = %s and dagster_event_type in "
            "('STEP_FAILURE', 'RUN_FAILURE') order by id",
            (run_id,),
        )
        found = [row[0][:3000] for row in cursor.fetchall()]
    connection.close()
    return found


def test_data_sets_and_partitions_build_at_once_on_two_workers_into_one_lake(
    builds, scaleout, monkeypatch
):
    deployment, workers, env, _ = scaleout
    logs = service_logs(deployment, workers)
    assert builds == dict.fromkeys([*DATASETS, *LANDED], DagsterRunStatus.SUCCESS), {
        name: text[-3000:] for name, text in logs.items() if name in WORKERS
    }
    for worker in workers:
        assert "succeeded" in logs[worker.name], f"{worker.name} executed no step"
    for name, text in logs.items():
        assert not [error for error in LOCK_ERRORS if error in text], f"lock error in {name}"
    counts = partition_counts(env, monkeypatch)
    expected = {
        **{(ds, initial_partition(spec_of(ds, scaleout[3] / "specs"))): rows
           for ds, rows in DATASETS.items()},
        **{("iris", name): LANDED_ROWS for name in LANDED},
    }  # fmt: skip
    for key, rows in expected.items():
        raw, valid, quarantined = counts[key]
        assert raw == rows == valid + quarantined, (key, counts[key])
    for name, bad in LANDED.items():
        assert counts[("iris", name)][2] == bad


def served_version(url: str, ds: str) -> str | None:
    answer = httpx.post(f"{url}/models/{ds}/predict", json=IRIS_RECORD, timeout=10)
    return answer.json()["version"] if answer.status_code == 200 else None


def test_a_replica_serves_the_champions(builds, scaleout, mlflow_server):
    root = scaleout[3]
    registry = MlflowClient(tracking_uri=mlflow_server)
    models = services.models_url(mlflow_server)
    url, replica = services.start_prediction_server(
        "prediction", models, root / "replica-logs", root / "prediction"
    )
    try:
        for ds in ("iris", EXTRA_SPEC):  # both take iris's four measurements
            champion = registry.get_model_version_by_alias(ds, "champion").version
            wait_for(lambda d=ds, v=champion: served_version(url, d) == v, 30, f"{ds} served")
    finally:
        replica.stop()


def executing_worker(events: list[tuple[str, str]], workers) -> services.Service | None:
    """The worker the step's task went to: dagster-celery's engine event names it."""
    for kind, text in events:
        if kind == "ENGINE_EVENT" and "in celery worker" in text:
            return next((w for w in workers if f"{w.name}@" in text), None)
    return None


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_step_leaves_no_partial_commit_and_the_step_runs_again(
    builds, scaleout, postgres, monkeypatch
):
    deployment, workers, env, root = scaleout
    database, step = env["DAGSTER_PG_DB"], "iris__raw"
    source = iris_source()
    drop_file(root / "data" / "landing" / "iris", BIG_FILE, iris_like(source, BIG_ROWS, 99))
    wait_for(lambda: BIG_FILE in landing_runs(postgres, database), 90, "the big file's run")
    run_id = landing_runs(postgres, database)[BIG_FILE]
    # the step is inside load_raw once it logged "landing ... as the raw record"
    wait_for(lambda: any(kind is None and "as the raw record" in text
                         for kind, text in step_events(postgres, database, run_id, step)),
             300, "the raw step landing the big file")  # fmt: skip
    events = step_events(postgres, database, run_id, step)
    victim = executing_worker(events, workers)
    assert victim is not None, events
    assert "STEP_SUCCESS" not in [kind for kind, _ in events], "the step ended before the kill"
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    killed = time.monotonic()

    # each step's writes are all there or absent: raw whole or none, validated likewise
    raw, valid, quarantined = partition_counts(env, monkeypatch).get(("iris", BIG_FILE), (0, 0, 0))
    assert raw in {0, BIG_ROWS} and valid + quarantined in {0, raw}, (raw, valid, quarantined)

    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    status = wait_for_run(client, run_id, VISIBILITY_TIMEOUT + 600)
    retried = executing_worker(
        step_events(postgres, database, run_id, step)[len(events) :], workers
    )
    print(f"\nkilled {victim.name} mid-step: run {status.value} {time.monotonic() - killed:.0f} s "
          f"later, step taken again by {retried.name if retried else 'no worker'}")  # fmt: skip
    assert status in {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}

    # the next run of the partition, as a user re-materializing it from the UI
    assets = [AssetKey(["iris", "raw"]), AssetKey(["iris", "validated"])]
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    next_run = client.submit_job_execution(
        IMPLICIT_ASSET_JOB, repository_location_name=LOCATION, repository_name=REPOSITORY,
        asset_selection=assets, tags={"dagster/partition": BIG_FILE},
    )  # fmt: skip
    try:
        status = wait_for_run(client, next_run, 240)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run_events(postgres, database, next_run)}\n"
                             f"{service_logs(deployment, workers)}") from None  # fmt: skip
    assert status == DagsterRunStatus.SUCCESS
    raw, valid, quarantined = partition_counts(env, monkeypatch)[("iris", BIG_FILE)]
    assert raw == BIG_ROWS == valid + quarantined
    logs = service_logs(deployment, workers)
    for name, text in logs.items():
        assert not [error for error in LOCK_ERRORS if error in text], f"lock error in {name}"
