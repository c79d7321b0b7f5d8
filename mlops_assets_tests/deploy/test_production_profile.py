"""The production profile end to end on real services: a run submitted through the Dagster
webserver (as the UI's "Materialize" does) waits in the queue of the PostgreSQL instance, the
daemon launches it on the code server, and the champion lands on the MLflow tracking server."""

from __future__ import annotations

import time

import httpx
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from mlflow.tracking import MlflowClient

from mlops_assets.definitions import dataset_assets
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import load_specs
from mlops_assets.settings import BUILTIN_SPECS_DIR

pytestmark = pytest.mark.slow

LOCATION = "mlops_assets"
REPOSITORY = "__repository__"  # the repository Dagster makes of a module's Definitions
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def add_partition(deployment, name: str, key: str) -> None:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    variables = {"selector": selector, "name": name, "key": key}
    response = httpx.post(
        deployment.graphql_url, json={"query": ADD_PARTITION, "variables": variables}, timeout=60
    )
    result = response.json()["data"]["addDynamicPartition"]
    assert result["__typename"] == "AddDynamicPartitionSuccess", result


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


@pytest.fixture(scope="module")
def iris_run(dagster_deployment) -> tuple[str, DagsterRunStatus]:
    """iris built as a user clicking "Materialize all" would: partition added and run submitted
    through the webserver's GraphQL API. Returns the run id and its final status."""
    spec = load_specs([BUILTIN_SPECS_DIR])["iris"]
    partition = initial_partition(spec)
    add_partition(dagster_deployment, files_partitions(spec).name, partition)
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_deployment.webserver_port)
    run_id = client.submit_job_execution(
        IMPLICIT_ASSET_JOB,
        repository_location_name=LOCATION,
        repository_name=REPOSITORY,
        asset_selection=[asset.key for asset in dataset_assets(spec)],
        tags={"dagster/partition": partition, "mlops/trigger": "deploy test"},
    )
    return run_id, wait_for_run(client, run_id, timeout=480)


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
    spec = load_specs([BUILTIN_SPECS_DIR])["iris"]
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
