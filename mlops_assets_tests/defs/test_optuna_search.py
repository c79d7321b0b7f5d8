"""A build whose spec asks for an Optuna search: each family's trials are runs nested under its
candidate run, its study is stored beside MLflow's store, and the candidate is its best trial."""

import json

import duckdb
import optuna
import pytest
from dagster import AssetKey
from mlflow.tracking import MlflowClient
from threadpoolctl import threadpool_limits

from mlops_assets.build import build_dataset
from mlops_assets.lib.search import study_name
from mlops_assets.lib.spec import Search
from mlops_assets.settings import MLFLOW_EXPERIMENT

pytestmark = pytest.mark.slow
TRIALS = 6


def test_each_trial_is_a_run_under_its_candidates_run(settings, instance, builtin_specs):
    spec = builtin_specs["iris"].model_copy(
        update={"search": Search(backend="optuna", trials=TRIALS)}
    )
    with threadpool_limits(1):  # gradient boosting's threads crawl on a busy machine
        outcome = build_dataset(spec, settings, instance)
    assert outcome.success, outcome.failures
    assert settings.search_storage.samefile(settings.data_dir / "optuna.db")  # beside mlflow.db
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert {run.info.status for run in runs} == {"FINISHED"}
    [parent] = [run for run in runs if run.data.tags.get("mlops.role") == "parent"]
    candidates = {run.data.tags["family"]: run for run in runs if "family" in run.data.tags}
    assert len(candidates) == 3
    for candidate in candidates.values():
        assert candidate.data.tags["mlflow.parentRunId"] == parent.info.run_id
        trials = [
            run for run in runs if run.data.tags.get("mlflow.parentRunId") == candidate.info.run_id
        ]
        assert sorted(int(run.data.tags["search.trial"]) for run in trials) == list(range(TRIALS))
        assert all("cv_f1_macro" in run.data.metrics for run in trials)
        assert candidate.data.metrics["search_trials"] == TRIALS
    assert_candidates_are_the_best_trials(settings, instance, spec)


def assert_candidates_are_the_best_trials(settings, instance, spec):
    event = instance.get_latest_materialization_event(AssetKey(["iris", "candidates"]))
    fingerprint = event.asset_materialization.metadata["training_fingerprint"].value
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        table = con.execute("SELECT family, params, cv_f1_macro FROM iris.candidates").df()
    storage = f"sqlite:///{settings.search_storage}"
    for row in table.itertuples():
        study = optuna.load_study(
            study_name=study_name("iris", row.family, fingerprint), storage=storage
        )
        assert json.loads(row.params) == study.best_params
        assert row.cv_f1_macro == pytest.approx(study.best_value)
