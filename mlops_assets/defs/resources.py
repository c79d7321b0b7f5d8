"""Typed wrappers around what the assets touch: DuckDB, source files, model store, MLflow."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, Failure, resource
from dagster_duckdb import DuckDBResource
from dagster_mlflow import mlflow_tracking
from dagster_mlflow.resources import CONFIG_SCHEMA
from pydantic import Field

from mlops_assets.lib.sources import SourceUnavailable, fetch_source, initial_partition
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.settings import Settings

EXPERIMENT = "mlops_assets"


class Warehouse(DuckDBResource):
    """dagster-duckdb's resource on the warehouse file, with DuckDB's buffer limit set.

    One writing process at a time: the assets share the `duckdb` pool, and the library retries
    a connection that finds the file locked.
    """

    memory_limit: str = Field(
        "1GB", description="DuckDB's buffer limit; beyond it DuckDB spills to disk"
    )

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as con:
            try:
                limit = self.memory_limit.replace("'", "''")
                con.execute(f"SET memory_limit = '{limit}'")
                yield con
            finally:
                # the library closes only when the block succeeds; a failed step must release
                # the file lock too
                con.close()


class SourceFiles(ConfigurableResource):
    """Files that come in: sources and landed files (raw partitions), the server's prediction
    logs, and batches to score."""

    sources_dir: str
    landing_dir: str
    predictions_dir: str
    score_dir: str

    def prediction_log(self, dataset: str, day: str) -> Path:
        return Path(self.predictions_dir) / dataset / f"{day}.jsonl"

    def path_for(self, spec: DatasetSpec, partition: str) -> Path:
        if partition == initial_partition(spec):
            try:
                return fetch_source(spec, Path(self.sources_dir))
            except SourceUnavailable as exc:
                raise Failure(description=str(exc)) from None
        landed = Path(self.landing_dir) / spec.name / partition
        if not landed.is_file():
            raise Failure(description=f"{spec.name}: partition {partition!r} has no file {landed}")
        return landed


class ModelStore(ConfigurableResource):
    """The folder of servable bundles the prediction server follows."""

    root: str

    def dataset_dir(self, dataset: str) -> Path:
        return Path(self.root) / dataset


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> None:
    """Create the experiment with artifacts under the data dir, not the working directory."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        Path(artifact_location).mkdir(parents=True, exist_ok=True)
        client.create_experiment(name, artifact_location=Path(artifact_location).as_uri())


@resource(
    config_schema={**CONFIG_SCHEMA, "artifact_location": str},
    description="dagster-mlflow's mlflow_tracking, with the experiment's artifact location set.",
)
def mlflow_run(context):
    import mlflow

    config = context.resource_config
    ensure_experiment(
        config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"]
    )
    tracking = mlflow_tracking.resource_fn(context)
    mlf = next(tracking)
    try:
        yield mlf
    finally:
        failed = sys.exc_info()[0] is not None
        next(tracking, None)  # dagster-mlflow's own teardown: ends the run FAILED on an error
        # a run whose steps never used MLflow (e.g. ingestion only) would stay RUNNING
        if mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED" if failed else "FINISHED")


def resources_for(settings: Settings) -> dict:
    return {
        "warehouse": Warehouse(database=str(settings.warehouse_path)),
        "source_files": SourceFiles(
            sources_dir=str(settings.sources_dir),
            landing_dir=str(settings.landing_dir),
            predictions_dir=str(settings.predictions_dir),
            score_dir=str(settings.score_dir),
        ),
        "model_store": ModelStore(root=str(settings.models_dir)),
        "mlflow": mlflow_run.configured(
            {
                "experiment_name": EXPERIMENT,
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": str(settings.artifacts_dir),
            }
        ),
    }


@contextmanager
def finished_mlflow_run(mlf) -> Iterator[None]:
    """Keep the Dagster run's MLflow run active for a step and end it FINISHED or FAILED.

    dagster-mlflow's end-run hook only covers jobs; asset materializations launched from the UI
    would leave the run RUNNING. Each step resumes the run and ends it, so whichever step is last
    leaves the final status.
    """
    import mlflow

    if mlflow.active_run() is None:  # an earlier step of this process ended it
        mlflow.start_run(run_id=mlf.mlflow_run_id or mlf._get_current_run_id())
    try:
        yield
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")
