"""MLflow calls: prepare the store, log candidate runs, end orphaned runs, move the aliases."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mlops_assets.lib.fingerprint import FINGERPRINT_TAG
from mlops_assets.lib.locks import exclusive_lock
from mlops_assets.settings import sqlite_path

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.lib.search import TrialReport

CHAMPION = "champion"
CHALLENGER = "challenger"
DAGSTER_RUN_TAG = "dagster_run_id"  # on the parent run of a Dagster run and on its candidates
ENDED_BY_TAG = "mlops.ended_by"
# MLflow 3's UI opens an experiment of this kind on its runs (training), not on GenAI traces
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"
# Dagster run statuses in which the run may still be using its MLflow runs
LIVE_DAGSTER_STATUSES = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}


def prepare_tracking_store(tracking_uri: str, experiment: str, artifact_location: str) -> str:
    """Create (migrate) the tracking store and the experiment once; returns the experiment id.

    Two processes creating a fresh SQLite store at once both run MLflow's migrations and one
    fails (`duplicate column name: step`), so the first touch happens under a file lock.
    """
    database = sqlite_path(tracking_uri)
    lock = database.with_name(database.name + ".lock") if database else None
    if lock is None:
        return _ensure_experiment(MlflowClient(tracking_uri), experiment, artifact_location)
    database.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock):
        if not database.exists():
            _create_store_aside(database)
        return _ensure_experiment(MlflowClient(tracking_uri), experiment, artifact_location)


def _create_store_aside(database: Path) -> None:
    """Migrate a new store in a file beside `database`, then rename it in: a build killed
    mid-migration leaves no half-made `mlflow.db` (`table ... already exists` ever after)."""
    aside = database.with_name(database.name + ".creating")
    aside.unlink(missing_ok=True)  # a killed creation's leftover; we hold the lock
    MlflowClient(f"sqlite:///{aside}").search_experiments(max_results=1)
    os.replace(aside, database)


def _ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    """The experiment's id. With a local store its artifacts go under the data dir, not the
    working dir; a tracking server keeps its own artifact store (`--serve-artifacts`)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_EXPERIMENT:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)
        return found.experiment_id
    tags = {EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT}
    if urlparse(client.tracking_uri).scheme in ("http", "https"):
        return client.create_experiment(name, tags=tags)
    Path(artifact_location).mkdir(parents=True, exist_ok=True)
    location = Path(artifact_location).as_uri()
    return client.create_experiment(name, artifact_location=location, tags=tags)


def end_orphaned_runs(
    client: MlflowClient, experiment: str, dagster_status: Callable[[str], str | None]
) -> list[str]:
    """End RUNNING runs whose Dagster run is over (or unknown) as KILLED, saying why.

    `dagster_status(run_id)` is the Dagster run's status name, None when the instance does not
    know it. Runs without a Dagster run id (not started by this platform) are left alone.
    Returns one line per ended run.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = client.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    ended = []
    for run in running:
        dagster_run_id = _dagster_run_of(client, run)
        if dagster_run_id is None:
            continue
        status = dagster_status(dagster_run_id)
        if status in LIVE_DAGSTER_STATUSES:
            continue
        reason = f"orphaned: Dagster run {dagster_run_id} is {status or 'unknown'}"
        client.set_tag(run.info.run_id, ENDED_BY_TAG, reason)
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(f"MLflow run {run.info.run_id} ({run.info.run_name}) ended KILLED: {reason}")
    return ended


def _dagster_run_of(client: MlflowClient, run) -> str | None:
    if DAGSTER_RUN_TAG in run.data.tags:
        return run.data.tags[DAGSTER_RUN_TAG]
    parent = run.data.tags.get("mlflow.parentRunId")
    return client.get_run(parent).data.tags.get(DAGSTER_RUN_TAG) if parent else None


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    model_uri: str


def pip_requirements() -> list[str]:
    """Explicit requirements: MLflow's inference runs a subprocess and costs seconds per model."""
    import numpy as np
    import pandas as pd
    import sklearn
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"skops=={skops.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def trusted_types(model) -> list[str]:
    """The types skops would refuse to load (e.g. HistGradientBoosting's TreePredictor)."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


@contextmanager
def candidate_run(dataset: str, family: str) -> Iterator[mlflow.ActiveRun]:
    """One nested MLflow run per candidate (under the Dagster run's run), active in the block and
    ended FINISHED or FAILED by it: its search trials nest under it."""
    tags = {"dataset": dataset, "family": family}
    parent = mlflow.active_run()
    if parent is not None and DAGSTER_RUN_TAG in parent.data.tags:
        tags[DAGSTER_RUN_TAG] = parent.data.tags[DAGSTER_RUN_TAG]
    with mlflow.start_run(run_name=f"{dataset}-{family}", nested=True, tags=tags) as run:
        yield run


def log_candidate(
    dataset: str,
    family: str,
    model,
    params: dict[str, Any],
    metrics: dict[str, float],
    x_example: pd.DataFrame,
) -> LoggedCandidate:
    """A candidate's own nested run, holding its model, settings and metrics."""
    with candidate_run(dataset, family):
        return log_fitted(family, model, params, metrics, x_example)


def log_fitted(
    family: str, model, params: dict[str, Any], metrics: dict[str, float], x_example: pd.DataFrame
) -> LoggedCandidate:
    """The model, its settings and metrics, into the active candidate run."""
    run = mlflow.active_run()
    mlflow.log_params({"family": family, **params})
    mlflow.log_metrics(metrics)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(x_example, model.predict(x_example)),
        input_example=x_example.head(3),
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted_types(model),
    )
    return LoggedCandidate(run.info.run_id, info.model_uri)


def log_trial(family: str, cv_metric: str, trial: TrialReport) -> None:
    """One search trial as a run nested under the active candidate run: its settings, its
    cross-validated score and each fold's (a pruned trial: the folds it reached)."""
    tags = {
        "search.trial": str(trial.number),
        "search.state": "pruned" if trial.pruned else "complete",
    }
    with mlflow.start_run(run_name=f"{family} trial {trial.number}", nested=True, tags=tags):
        mlflow.log_params(trial.params)
        folds = {f"{cv_metric}_fold{i}": score for i, score in enumerate(trial.fold_scores)}
        mlflow.log_metrics({cv_metric: trial.cv_score, **folds})


def load_model(model_uri: str):
    """The model, unpickled; the files MLflow downloads for it (from a tracking server, or copied
    from a local store) go to a folder removed on return, not to a new system temp folder each."""
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
        return mlflow.sklearn.load_model(model_uri, dst_path=folder)


def champion_version(client: MlflowClient, name: str):
    """The registry version holding alias `champion`, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def version_with_fingerprint(client: MlflowClient, name: str, fingerprint: str) -> str | None:
    """The champion's or the latest registered version of `name` when it was trained with this
    training fingerprint (tag `training_fingerprint`), else None."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    latest = max(versions, key=lambda v: int(v.version), default=None)
    for found in (champion_version(client, name), latest):
        if found is not None and found.tags.get(FINGERPRINT_TAG) == fingerprint:
            return str(found.version)
    return None


def version_of_run(client: MlflowClient, name: str, run_id: str) -> str | None:
    """The newest registered version of `name` whose model was logged by `run_id`, or None."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return max((str(v.version) for v in versions), key=int, default=None)


def register(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """A new registry version of `name` for a logged model; returns the version number."""
    return str(mlflow.register_model(model_uri, name, tags=tags).version)


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    """Remove `alias` from `name`; an alias that is not set is no error."""
    with suppress(MlflowException):
        MlflowClient().delete_registered_model_alias(name, alias)


def python_version() -> str:
    return platform.python_version()


if __name__ == "__main__":  # `mlops build` creates a new store so while it imports the pipeline
    prepare_tracking_store(*sys.argv[1:4])
