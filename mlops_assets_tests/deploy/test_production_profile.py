"""The production profile end to end on real services: a run submitted through the Dagster
webserver (as the UI's "Materialize" does) waits in the queue of the PostgreSQL instance, the
daemon launches it on the code server, and the champion lands on the MLflow tracking server.
Two prediction-server replicas follow the champion through the tracking server's artifacts
(MLOPS_MODELS_URL), write their logs to the folder they share with the pipeline
(MLOPS_LOGS_DIR), whose prediction_log and drift load and count them, and a real Prometheus
with deploy/prometheus/rules.yml scrapes them."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dagster import AssetKey, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from mlflow.tracking import MlflowClient

from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.lib import traffic
from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import load_spec
from mlops_assets.settings import builtin_spec_path
from mlops_assets_tests.deploy import services
from mlops_assets_tests.serving.conftest import IRIS_RECORD, iris_frame
from mlops_contract.location import open_location

pytestmark = pytest.mark.slow

LOCATION = "mlops_assets"
REPOSITORY = "__repository__"  # the repository Dagster makes of a module's Definitions
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def dynamic_partitions(postgres, database: str, name: str) -> list[str]:
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "select partition from dynamic_partitions where partitions_def_name = %s", (name,)
        )
        return [row[0] for row in cursor.fetchall()]


def wait_for_run(client: DagsterGraphQLClient, run_id: str, timeout: float) -> DagsterRunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in FINISHED:
            return status
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s (last status {status})")


def run_events(postgres, database: str, run_id: str) -> list[str]:
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "select dagster_event_type from event_logs where run_id = %s order by id", (run_id,)
        )
        events = [row[0] for row in cursor.fetchall()]
    connection.close()
    return events


def run_status_in_postgres(postgres, database: str, run_id: str) -> str:
    connection = postgres.connect(database)
    with connection, connection.cursor() as cursor:
        cursor.execute("select status from runs where run_id = %s", (run_id,))
        (status,) = cursor.fetchone()
    connection.close()
    return status


def submit(deployment, assets, partition: str | None = None, timeout: float = 480, **tags):
    """Submit a run of `assets` through the webserver's GraphQL API, as the UI does; returns
    its id and final status."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
    tags = {"mlops/trigger": "deploy test", **tags}
    if partition is not None:
        tags["dagster/partition"] = partition
    run_id = client.submit_job_execution(
        IMPLICIT_ASSET_JOB,
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        asset_selection=list(assets),
        tags=tags,
    )
    return run_id, wait_for_run(client, run_id, timeout)


@pytest.fixture(scope="module")
def iris_run(dagster_deployment, postgres) -> tuple[str, DagsterRunStatus]:
    """iris built as a user clicking "Materialize all" would: its source is a partition once
    the daemon ticked the `landing` sensor, and the run is submitted through the webserver's
    GraphQL API. Returns the run id and its final status."""
    spec = load_spec(builtin_spec_path("iris"))
    partition = initial_partition(spec)
    database = dagster_deployment.env["DAGSTER_PG_DB"]
    partitions = files_partitions(spec).name
    wait_for(
        lambda: partition in dynamic_partitions(postgres, database, partitions),
        60, "the landing sensor's first tick adds the source partition",
    )  # fmt: skip
    assets = [asset.key for asset in dataset_assets(spec)]
    return submit(dagster_deployment, assets, partition)


def test_a_run_submitted_to_the_queue_is_launched_by_the_daemon_and_recorded_in_postgres(
    iris_run, dagster_deployment, postgres
):
    run_id, status = iris_run
    database = dagster_deployment.env["DAGSTER_PG_DB"]
    events = run_events(postgres, database, run_id)
    assert status == DagsterRunStatus.SUCCESS, events[-5:]
    # the webserver only enqueued it (a queued run stays queued without a daemon): the daemon
    # launched it on the code server
    assert run_status_in_postgres(postgres, database, run_id) == "SUCCESS"
    assert events.index("PIPELINE_ENQUEUED") < events.index("PIPELINE_STARTING")
    assert events.index("PIPELINE_STARTING") < events.index("PIPELINE_START")
    spec = load_spec(builtin_spec_path("iris"))
    assert events.count("ASSET_MATERIALIZATION") == len(dataset_assets(spec))


def test_the_champion_is_registered_on_the_tracking_server(iris_run, mlflow_server):
    run_id, status = iris_run
    assert status == DagsterRunStatus.SUCCESS
    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("iris", "champion")
    assert champion.tags["dagster_run_id"] == run_id
    assert client.get_run(champion.run_id).data.metrics["test_f1_macro"] > 0.8


def test_model_artifacts_are_stored_by_the_tracking_server(iris_run, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("iris", "champion")
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")


# ---------------------------------------------------------------- replicas and monitoring

RULES = services.DEPLOY_DIR / "prometheus" / "rules.yml"
DASHBOARDS = services.DEPLOY_DIR / "grafana" / "dashboards"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s: {what}")


def served_version(url: str) -> str | None:
    answer = httpx.post(f"{url}/models/iris/predict", json=IRIS_RECORD, timeout=10)
    return answer.json()["version"] if answer.status_code == 200 else None


def publish_broken_bundle(models: str, dataset: str) -> None:
    """A bundle whose model does not match its manifest, made current at `models`."""
    location = open_location(models)
    manifest = json.dumps(
        {"format": 1, "name": dataset, "version": "1", "bundle_id": "b1",
         "files": {"model.joblib": hashlib.sha256(b"another model").hexdigest()}}
    ).encode()  # fmt: skip
    location.write(f"{dataset}/bundles/b1/model.joblib", b"not this model")
    location.write(f"{dataset}/bundles/b1/manifest.json", manifest)
    pointer = {"bundle": "b1", "manifest_sha256": hashlib.sha256(manifest).hexdigest()}
    location.write(f"{dataset}/current.json", json.dumps(pointer).encode())


def prometheus_query(prometheus_url: str, expr: str) -> list:
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["result"]


def firing(prometheus_url: str, alert: str) -> bool:
    alerts = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == alert and a["state"] == "firing" for a in alerts)


MATERIALIZATION = """
query ($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1, partitions: $partitions) {
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""


def materialized_metadata(deployment, asset: str, partition: str | None = None) -> dict:
    """The integer metadata of iris/`asset`'s latest materialization, as the UI reads it."""
    variables = {"key": {"path": ["iris", asset]}, "partitions": [partition] if partition else None}
    answer = httpx.post(
        deployment.graphql_url, json={"query": MATERIALIZATION, "variables": variables}, timeout=30
    )
    (latest,) = answer.json()["data"]["assetOrError"]["assetMaterializations"]
    return {e["label"]: e["intValue"] for e in latest["metadataEntries"] if "intValue" in e}


def panel_queries() -> list[tuple[str, str]]:
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    return [
        (f"{path.name}: {panel.get('title')}", target["expr"])
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in panels(json.loads(path.read_text())["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def test_replicas_follow_the_champion_through_the_tracking_server_and_prometheus_sees_them(
    iris_run, dagster_deployment, mlflow_server, replicas, prometheus
):
    assert iris_run[1] == DagsterRunStatus.SUCCESS
    registry = MlflowClient(tracking_uri=mlflow_server)
    first = registry.get_model_version_by_alias("iris", "champion").version
    wait_for(lambda: {served_version(url) for url in replicas} == {first}, 30, "both serve v1")
    prometheus_url = prometheus([url.removeprefix("http://") for url in replicas], [RULES])

    # twice the iris rows: each replica's log holds more than `gates.drift_min_rows` (200)
    records = iris_frame()[0].to_dict("records") * 2
    for url in replicas:
        assert traffic.send(url, "iris", records, batch=30) == {200: 10}

    # a forced retrain promotes a new version (same data: at least as good as the champion)
    force = {"mlops/force_retrain": "true"}
    _, status = submit(
        dagster_deployment, [AssetKey(["iris", "champion_model"])], timeout=300, **force
    )
    assert status == DagsterRunStatus.SUCCESS
    second = registry.get_model_version_by_alias("iris", "champion").version
    assert second != first
    wait_for(lambda: {served_version(url) for url in replicas} == {second}, 10, "both switch")

    # what both replicas served reaches the pipeline through the shared logs folder: loaded
    # into iris.prediction_log and counted by drift, published as drift.json, exported by both
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    logs_dir = Path(dagster_deployment.env["MLOPS_LOGS_DIR"])
    log_file = logs_dir / "predictions" / "iris" / f"{today}.jsonl"
    served = 2 * len(records)  # besides the few probes of served_version
    wait_for(lambda: log_file.read_text().count("\n") >= served, 10, "both replicas' logs")
    time.sleep(2)  # the probes' lines too: each replica flushes its log every second
    for asset, partition in (("prediction_log", today), ("drift", None)):
        _, status = submit(dagster_deployment, [AssetKey(["iris", asset])], partition, timeout=300)
        assert status == DagsterRunStatus.SUCCESS, asset
    logged = log_file.read_text().count("\n")
    assert logged >= served
    assert materialized_metadata(dagster_deployment, "prediction_log", today)["rows"] == logged
    assert materialized_metadata(dagster_deployment, "drift")["current_rows"] == logged
    gauge = f'mlops_dataset_drift{{model="iris",version="{second}"}}'
    wait_for(
        lambda: all(gauge in httpx.get(f"{url}/metrics").text for url in replicas),
        15, "drift gauges on both replicas",
    )  # fmt: skip

    # labels sent back to a replica reach live_performance (shared logs folder again), which
    # publishes live.json; both replicas export the realized and the estimated metric
    features, species = iris_frame()
    delivery = traffic.deliver(replicas[0], "iris", features.to_dict("records"), 30, list(species))
    assert set(delivery.labels) == {200}
    time.sleep(2)  # the feedback log is flushed every second too
    for asset, partition in (
        ("prediction_log", today),
        ("labels", None),
        ("live_performance", today),
    ):
        _, status = submit(dagster_deployment, [AssetKey(["iris", asset])], partition, timeout=300)
        assert status == DagsterRunStatus.SUCCESS, asset
    live = f'mlops_live_metric{{metric="accuracy",model="iris",version="{second}"}}'
    wait_for(
        lambda: all(live in httpx.get(f"{url}/metrics").text for url in replicas),
        15, "live performance gauges on both replicas",
    )  # fmt: skip

    # a broken bundle: rejected by both replicas, 503 for its data set, ModelLoadFailed fires
    publish_broken_bundle(services.models_url(mlflow_server), "ghost")
    for url in replicas:
        wait_for(lambda u=url: httpx.get(f"{u}/models/ghost").json().get("load_error"), 15, url)
        ghost = httpx.post(f"{url}/models/ghost/predict", json=IRIS_RECORD, timeout=10)
        assert ghost.status_code == 503
        assert served_version(url) == second
    wait_for(lambda: firing(prometheus_url, "ModelLoadFailed"), 30, "ModelLoadFailed firing")

    # every dashboard panel has data
    for title, expr in panel_queries():
        query = expr.replace("$__rate_interval", "1m")
        wait_for(lambda q=query: prometheus_query(prometheus_url, q), 30, f"{title}: {expr}")
