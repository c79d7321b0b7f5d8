"""Typed wrappers around what the assets touch: DuckDB, source files, model store, MLflow.

MLflow (and, through `lib.registry`, scikit-learn) is imported where a run first uses it: the
code location loads this module, and the UI's code server never logs a run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster import AssetExecutionContext, ConfigurableResource, Failure, InitResourceContext
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mlops_assets.defs.keys import TRIGGER_TAG
from mlops_assets.lib.sources import SourceUnavailable, fetch_source, initial_partition
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import attach_lake
from mlops_assets.settings import MLFLOW_EXPERIMENT, Settings, load_settings

PARENT_ROLE_TAG = "mlops.role"
PARENT_DATASET_TAG = "mlops.dataset"
# tags Dagster puts on runs a sensor or a schedule launched
LAUNCHER_TAGS = ("dagster/sensor_name", "dagster/schedule_name")


def run_trigger(ds: str, tags: Mapping[str, str]) -> str:
    """What started a run, in a word or two: `build`, a sensor's or schedule's name (without the
    data set prefix), the run's own trigger tag, or `manual` (launched from the UI)."""
    for tag in LAUNCHER_TAGS:
        if tags.get(tag):
            return tags[tag].removeprefix(f"{ds}_")
    trigger = tags.get(TRIGGER_TAG)
    if trigger == "mlops build":
        return "build"
    return trigger or "manual"


def parent_run_name(ds: str, tags: Mapping[str, str], started: datetime) -> str:
    """e.g. `abalone build 2026-11-30T08:18Z`, so MLflow's run list says what each run was."""
    return f"{ds} {run_trigger(ds, tags)} {started.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


class Warehouse(DuckDBResource):
    """dagster-duckdb's resource on the warehouse file, with DuckDB's buffer limit set; or, with
    `lake_catalog`, a DuckLake: catalog in PostgreSQL, data files in a shared folder.

    The file takes one writing process at a time: the assets share the `duckdb` pool, and the
    library retries a connection that finds the file locked. A DuckLake takes many writers (it
    retries a commit that conflicts), so the scale-out profile raises the pool's limit.
    """

    memory_limit: str = Field(
        "1GB", description="DuckDB's buffer limit; beyond it DuckDB spills to disk"
    )
    lake_catalog: str | None = Field(
        None,
        description="a DuckLake's catalog database, e.g. `postgres:dbname=lake host=db user=mlops`"
        "; unset: the DuckDB file `database`",
    )
    lake_data_path: str | None = Field(
        None,
        description="the folder (shared by every worker) or `s3://` URL the DuckLake's Parquet "
        "files and landed source files go to",
    )

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """For a step: a DuckLake commit conflict asks Dagster to run the step again."""
        with self._session() as con:
            try:
                yield con
            except duckdb.Error as exc:
                if self.lake_catalog and any(text in str(exc) for text in LAKE_CONFLICTS):
                    raise lake_conflict_retry(exc) from exc
                raise

    def read_connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """For reading outside a run: the file read-only (a running build may be writing it)."""
        if self.lake_catalog:
            return self._session()
        return duckdb.connect(self.database, read_only=True)

    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as con:
            try:
                limit = self.memory_limit.replace("'", "''")
                con.execute(f"SET memory_limit = '{limit}'")
                yield con
            finally:
                # the library closes only when the block succeeds; a failed step must release
                # the file lock too
                con.close()

    def _connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        if not self.lake_catalog:
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
            return super().get_connection()
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            attach_lake(con, self.lake_catalog, self.lake_data_path or "")
        except BaseException:
            con.close()
            raise
        return nullcontext(con)


# A commit another writer's commit invalidated: DuckLake retries appends itself, not a created or
# replaced table or view; and its own retries (ducklake_max_retry_count, 10) can run out when
# many writers commit at once (bench.lake_commits saw it with 2 and more writers)
LAKE_CONFLICT = "Transaction conflict"
LAKE_RETRIES_EXHAUSTED = "Exceeded the maximum retry count"
LAKE_CONFLICTS = (LAKE_CONFLICT, LAKE_RETRIES_EXHAUSTED)
LAKE_CONFLICT_RETRIES = 5


def lake_conflict_retry(exc: duckdb.Error) -> dg.RetryRequested:
    """A DuckLake commit that another writer's commit invalidated (both created or replaced the
    same table or view, e.g. the first loads into a new lake, or DuckLake's own retries ran
    out): the step runs again from the start, in the same run, after a random wait so the
    writers spread out. Steps that write the warehouse replace what their partition held, so a
    second attempt is safe."""
    dg.get_dagster_logger().warning(f"DuckLake commit conflict, the step runs again: {exc}")
    return dg.RetryRequested(
        max_retries=LAKE_CONFLICT_RETRIES, seconds_to_wait=round(random.uniform(1, 5), 1)
    )


class SourceFiles(ConfigurableResource):
    """Files that come in: sources and landed files (raw partitions), the server's prediction
    and feedback logs, dropped label files, and batches to score."""

    sources_dir: str
    landing_dir: str
    predictions_dir: str
    score_dir: str
    feedback_dir: str
    labels_dir: str

    def prediction_log(self, dataset: str, day: str) -> Path:
        return Path(self.predictions_dir) / dataset / f"{day}.jsonl"

    def shadow_log(self, dataset: str, day: str) -> Path:
        """The challenger's shadow predictions of a day, beside the prediction log (as the
        server writes them: serving.config.ServingConfig.shadow_dir)."""
        return Path(self.predictions_dir).parent / "shadow" / dataset / f"{day}.jsonl"

    def label_folders(self, dataset: str) -> tuple[Path, Path]:
        """(the server's feedback log, the folder of dropped label files) of a data set."""
        return Path(self.feedback_dir) / dataset, Path(self.labels_dir) / dataset

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
    """The folder of servable bundles, and the location prediction servers follow
    (`MLOPS_MODELS_URL`, e.g. a tracking server's artifacts; unset: the folder itself)."""

    root: str
    url: str | None = None

    def dataset_dir(self, dataset: str) -> Path:
        return Path(self.root) / dataset

    def location(self) -> str:
        return self.url or self.root


class MlflowTracking(ConfigurableResource):
    """MLflow through its public API: one parent run per Dagster run (tagged with the Dagster run
    id), one nested run per candidate (and one per search trial under it); each step that logs
    ends the parent FINISHED or FAILED."""

    tracking_uri: str
    experiment_name: str = MLFLOW_EXPERIMENT
    artifact_location: str
    search_storage: str | None = Field(
        None, description="the Optuna studies' SQLite file, for specs with `search: optuna`"
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        import mlflow

        from mlops_assets.lib import registry

        registry.prepare_tracking_store(
            self.tracking_uri, self.experiment_name, self.artifact_location
        )
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment_name)

    @contextmanager
    def step_run(self, context: AssetExecutionContext, ds: str) -> Iterator[str]:
        """The Dagster run's parent run (of data set `ds`), active for the block; yields its id.

        Ended FAILED when the block raises, else FINISHED, so whichever step is last leaves the
        final status (a later step resumes it).
        """
        import mlflow

        name = parent_run_name(ds, context.run.tags, datetime.now(UTC))
        run_id = self.parent_run_id(context.run_id, ds, name)
        active = mlflow.active_run()
        if active is None or active.info.run_id != run_id:
            mlflow.start_run(run_id=run_id)
        try:
            yield run_id
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run(status="FINISHED")

    def parent_run_id(self, dagster_run_id: str, ds: str, run_name: str) -> str:
        """The MLflow run of a Dagster run of data set `ds`, created on first use."""
        from mlflow.tracking import MlflowClient

        from mlops_assets.lib import registry

        client = MlflowClient(self.tracking_uri)
        experiment_id = client.get_experiment_by_name(self.experiment_name).experiment_id
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.{registry.DAGSTER_RUN_TAG} = '{dagster_run_id}' "
            f"AND tags.`{PARENT_ROLE_TAG}` = 'parent'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        tags = {
            registry.DAGSTER_RUN_TAG: dagster_run_id,
            PARENT_ROLE_TAG: "parent",
            PARENT_DATASET_TAG: ds,
        }
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        return run.info.run_id


def warehouse_for(settings: Settings) -> Warehouse:
    return Warehouse(
        database=str(settings.warehouse_path),
        lake_catalog=settings.lake_catalog,
        lake_data_path=settings.lake_data_path,
    )


def from_environment(name: str, computed: str | None) -> str | None:
    """`dg.EnvVar(name)` when the variable is set, else the value `load_settings` computed.

    An EnvVar is read where a run initializes the resource, and the code location shows its name,
    not its value (a tracking server's URL may carry a token). It has no default, so an unset
    variable keeps the computed one (`sqlite:///<data>/mlflow.db`, no models URL).
    """
    return dg.EnvVar(name) if os.environ.get(name) else computed


def resources_for(settings: Settings) -> dict:
    # The folders (and the Optuna file beside MLflow's) are paths computed from MLOPS_DATA_DIR
    # ("data" under the working folder when unset) and MLFLOW_TRACKING_URI: an EnvVar stands for
    # one variable's whole value, not a path derived from it, so they are resolved when the
    # code location loads.
    return {
        "warehouse": warehouse_for(settings),
        "source_files": SourceFiles(
            sources_dir=str(settings.sources_dir),
            landing_dir=str(settings.landing_dir),
            predictions_dir=str(settings.predictions_dir),
            score_dir=str(settings.score_dir),
            feedback_dir=str(settings.feedback_dir),
            labels_dir=str(settings.labels_dir),
        ),
        "model_store": ModelStore(
            root=str(settings.models_dir),
            url=from_environment("MLOPS_MODELS_URL", settings.models_url),
        ),
        "mlflow": MlflowTracking(
            tracking_uri=from_environment("MLFLOW_TRACKING_URI", settings.tracking_uri),
            artifact_location=str(settings.artifacts_dir),
            search_storage=str(settings.search_storage),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(load_settings()))
