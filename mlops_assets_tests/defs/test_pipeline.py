"""The whole graph, materialized in-process on temp dirs with real DuckDB, MLflow and Dagster."""

import re

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, materialize
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from mlops_assets.build import build_dataset
from mlops_assets.components.dataset import dataset_assets
from mlops_assets.components.project import project_specs
from mlops_assets.defs.keys import FORCE_RETRAIN_TAG
from mlops_assets.defs.resources import resources_for
from mlops_assets.lib import registry, training
from mlops_assets.lib.features import model_inputs
from mlops_assets.lib.warehouse import scalar
from mlops_assets.settings import MLFLOW_EXPERIMENT
from mlops_contract import bundle
from mlops_contract.record import manifest_fields

pytestmark = pytest.mark.slow


def warehouse(settings):
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def row_counts(settings, ds):
    with warehouse(settings) as con:
        return [
            scalar(con, f"SELECT count(*) FROM {ds}.{t}")
            for t in ("raw", "validated", "quarantine")
        ]


def assert_built(outcome):
    assert outcome.success, outcome.describe()


def assert_mlflow_runs_finished_with_metrics(settings, ds, metrics):
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert runs and {run.info.status for run in runs} == {"FINISHED"}
    candidates = [run for run in runs if run.data.tags.get("dataset") == ds]
    assert len(candidates) >= 3
    for run in candidates:
        assert "mlflow.parentRunId" in run.data.tags  # nested under the Dagster run's run
        assert set(metrics) <= set(run.data.metrics)


def assert_bundle_matches_champion(settings, ds):
    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(ds, "champion")
    served = bundle.load_bundle(settings.models_dir / ds)
    assert served.version == str(champion.version)
    spec = project_specs(settings)[ds]
    with warehouse(settings) as con:
        features = con.execute(f"SELECT * FROM {ds}.features").df()
    x_test, _ = model_inputs(features, spec, "test")
    mlflow.set_tracking_uri(settings.tracking_uri)
    from_mlflow = mlflow.pyfunc.load_model(f"models:/{ds}@champion").predict(x_test)
    assert np.array_equal(np.asarray(served.model.predict(x_test)), np.asarray(from_mlflow))
    return served, x_test


def test_iris_end_to_end(settings, instance, builtin_specs):
    assert_built(build_dataset(builtin_specs["iris"], settings, instance))
    raw, valid, quarantined = row_counts(settings, "iris")
    assert raw == 150 == valid + quarantined
    assert_mlflow_runs_finished_with_metrics(
        settings, "iris", ["test_accuracy", "test_f1_macro", "test_log_loss"]
    )
    served, x_test = assert_bundle_matches_champion(settings, "iris")
    assert served.manifest["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(served.model.predict(x_test)) <= {"setosa", "versicolor", "virginica"}
    assert [field.name for field in manifest_fields(served.manifest)][:2] == [
        "sepal_length",
        "sepal_width",
    ]
    assert_parent_run_named_after_the_build(settings, "iris")


def assert_parent_run_named_after_the_build(settings, ds):
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    [parent] = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlops.role` = 'parent'"
    )
    assert re.fullmatch(rf"{ds} build \d{{4}}-\d\d-\d\dT\d\d:\d\dZ", parent.info.run_name)
    assert parent.data.tags["mlops.dataset"] == ds


def test_same_candidates_again_is_a_tie_and_ids_fit_the_table(settings, instance, builtin_specs):
    spec = builtin_specs["iris"]
    assert_built(build_dataset(spec, settings, instance))
    # forced: unforced, the same inputs register nothing (defs/test_unchanged_inputs.py)
    result = materialize_champion(settings, instance, spec, tags={FORCE_RETRAIN_TAG: "true"})
    assert result.success
    champion = result.asset_materializations_for_node("iris__champion_model")[0].metadata
    assert champion["promoted"].value is True
    assert champion["reason"].value.startswith("tie: promoted because test_f1_macro")
    with warehouse(settings) as con:
        history = con.execute("SELECT reason FROM iris.champion_history ORDER BY promoted_at").df()
    assert list(history["reason"]) == ["initial", "tie"]
    candidates = instance.get_latest_materialization_event(AssetKey(["iris", "candidates"]))
    metadata = candidates.asset_materialization.metadata
    run_ids = {key: value.value for key, value in metadata.items() if key.startswith("mlflow_")}
    assert len(run_ids) == 3 and all(len(run_id) == 32 for run_id in run_ids.values())
    table_text = metadata["candidates"].value
    assert all(run_id[:8] in table_text and run_id not in table_text for run_id in run_ids.values())


def test_diabetes_gate_keeps_the_champion_against_a_worse_model(settings, instance, builtin_specs):
    spec = builtin_specs["diabetes"]
    assert_built(build_dataset(spec, settings, instance))
    assert_mlflow_runs_finished_with_metrics(
        settings, "diabetes", ["test_r2", "test_rmse", "test_mae"]
    )
    assert_bundle_matches_champion(settings, "diabetes")
    client = MlflowClient(settings.tracking_uri)
    champion_before = client.get_model_version_by_alias("diabetes", "champion").version
    pointer_before = bundle.read_pointer(settings.models_dir / "diabetes")

    weak = training.preprocessor(spec)
    offer_only_candidate(
        settings,
        spec,
        Pipeline(
            [("prepare", weak), ("model", DecisionTreeRegressor(max_depth=3, random_state=0))]
        ),
    )
    result = materialize_champion(settings, instance, spec)
    assert result.success
    assert client.get_model_version_by_alias("diabetes", "champion").version == champion_before
    challenger = client.get_model_version_by_alias("diabetes", "challenger")
    assert int(challenger.version) > int(champion_before)
    assert bundle.read_pointer(settings.models_dir / "diabetes") == pointer_before
    materialization = result.asset_materializations_for_node("diabetes__champion_model")[0]
    assert materialization.metadata["promoted"].value is False


def test_a_model_losing_to_the_dummy_is_never_registered(settings, instance, builtin_specs):
    from sklearn.dummy import DummyRegressor

    spec = builtin_specs["diabetes"]
    assert_built(build_dataset(spec, settings, instance))
    pointer_before = bundle.read_pointer(settings.models_dir / "diabetes")
    offer_only_candidate(
        settings,
        spec,
        Pipeline([("prepare", training.preprocessor(spec)), ("model", DummyRegressor())]),
    )
    result = materialize_champion(settings, instance, spec)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "beats_baseline" and not evaluation.passed
    versions = MlflowClient(settings.tracking_uri).search_model_versions("name='diabetes'")
    assert len(versions) == 1
    assert bundle.read_pointer(settings.models_dir / "diabetes") == pointer_before


def offer_only_candidate(settings, spec, pipeline):
    """Replace the candidate table with one logged model, as a candidates run would."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        features = con.execute(f"SELECT * FROM {spec.name}.features").df()
        x_train, y_train = model_inputs(features, spec, "train")
        x_test, y_test = model_inputs(features, spec, "test")
        pipeline.fit(x_train, y_train)
        metrics = training.holdout_metrics(spec.task, pipeline, x_test, y_test)
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_experiment(MLFLOW_EXPERIMENT)
        with mlflow.start_run(run_name="test-parent"):
            logged = registry.log_candidate(spec.name, "weak", pipeline, {}, metrics, x_train)
        table = con.execute(f"SELECT * FROM {spec.name}.candidates LIMIT 1").df()
        row = {**table.iloc[0].to_dict(), **metrics, "family": "weak"}
        row.update(run_id=logged.run_id, model_uri=logged.model_uri)
        con.register("offered", pd.DataFrame([row]))
        con.execute(f"CREATE OR REPLACE TABLE {spec.name}.candidates AS SELECT * FROM offered")


def materialize_champion(settings, instance, spec, tags=None):
    return materialize(
        dataset_assets(spec),
        selection=[AssetKey([spec.name, "champion_model"])],
        instance=instance,
        resources=resources_for(settings),
        raise_on_error=False,
        tags=tags,
    )


def test_abalone_from_the_shared_file(
    settings, instance, builtin_specs, shared_abalone, monkeypatch
):
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", str(shared_abalone))
    assert_built(build_dataset(builtin_specs["abalone"], settings, instance))
    raw, valid, quarantined = row_counts(settings, "abalone")
    assert raw == 4177 == valid + quarantined
    runs = MlflowClient(settings.tracking_uri).search_runs(
        [
            MlflowClient(settings.tracking_uri)
            .get_experiment_by_name(MLFLOW_EXPERIMENT)
            .experiment_id
        ],
        filter_string="tags.dataset = 'abalone'",
    )
    assert all(run.data.metrics["test_r2"] > 0.3 for run in runs)
    served, _ = assert_bundle_matches_champion(settings, "abalone")
    record = {
        "Sex": "M",
        "Length": 0.455,
        "Diameter": 0.365,
        "Height": 0.095,
        "Whole weight": 0.514,
        "Shucked weight": 0.2245,
        "Viscera weight": 0.101,
        "Shell weight": 0.15,
    }
    rings = served.model.predict(pd.DataFrame([record]))[0]
    assert 5 < rings < 20
