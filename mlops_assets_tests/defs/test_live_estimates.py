"""`<ds>/live_performance`'s estimate on a real Dagster instance, DuckDB warehouse and MLflow
registry: a version's performance is estimated while no label has arrived, and shown beside
the realized one once the labels are in."""

import json

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.monitoring.labels import labels_asset, live_performance_asset
from mlops_assets.defs.resources import resources_for
from mlops_assets.lib import registry
from mlops_assets.lib.features import KEYS, build_feature_set, model_inputs
from mlops_assets.lib.warehouse import replace_table
from mlops_assets.settings import MLFLOW_EXPERIMENT
from mlops_assets_tests.lib.test_estimated import sample

DAY = "2026-11-23"
SPECIES = {"a": "setosa", "b": "versicolor", "c": "virginica"}


def iris_like(x, labels) -> pd.DataFrame:
    """iris's columns: two informative measurements and two of noise, all positive."""
    noise = np.random.default_rng(1).uniform(1, 2, size=(len(x), 2))
    return pd.DataFrame(
        {
            "sepal_length": 7 + x[:, 0],
            "sepal_width": 7 + x[:, 1],
            "petal_length": noise[:, 0],
            "petal_width": noise[:, 1],
            "species": [SPECIES[label] for label in labels],
        }
    )


@pytest.fixture
def registered_iris(settings, builtin_specs):
    """`iris.features` from the training distribution and version 1 registered in MLflow."""
    spec = builtin_specs["iris"]
    rows = iris_like(*sample(np.random.default_rng(0), 0.0, 2.0))
    rows = rows.assign(_partition="p", _source_file="f", _row_number=np.arange(len(rows)))
    features, _ = build_feature_set(rows[KEYS + list(rows.columns[:5])], spec)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        replace_table(con, "iris", "features", features)
    x_train, y_train = model_inputs(features, spec, "train")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train, y_train)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(MLFLOW_EXPERIMENT)
    with mlflow.start_run(run_name="test-parent"):
        logged = registry.log_candidate("iris", "logistic", model, {}, {}, x_train)
    assert registry.register("iris", logged.model_uri, {}) == "1"
    return spec, model


def serve_shifted(settings, model, rows: int = 1000) -> pd.DataFrame:
    """Log `rows` predictions of version 1 on shifted inputs; returns them with their truth."""
    window = iris_like(*sample(np.random.default_rng(2), [0.0, 0.3], 0.8)).head(rows)
    inputs = window.drop(columns="species")
    predicted, probabilities = model.predict(inputs), model.predict_proba(inputs)
    lines = [
        logged(
            f"r{i}", record, predicted[i], dict(zip(model.classes_, probabilities[i], strict=True))
        )
        for i, record in enumerate(inputs.to_dict("records"))
    ]
    (settings.predictions_dir / "iris").mkdir(parents=True)
    (settings.predictions_dir / "iris" / f"{DAY}.jsonl").write_text("\n".join(lines) + "\n")
    return window.assign(request_id=[f"r{i}" for i in range(rows)], predicted=predicted)


def logged(request_id: str, record: dict, prediction: str, probabilities: dict) -> str:
    """One line of the server's prediction log, for version 1 on DAY."""
    output = {"prediction": prediction, "probabilities": probabilities}
    return json.dumps({"request_id": request_id, "timestamp": f"{DAY}T12:00:00+00:00",
                       "model": "iris", "version": "1", "latency_ms": 1.0, "input": record,
                       "output": output})  # fmt: skip


def materialize_day(settings, spec):
    log, _ = monitoring_assets(spec)
    assets = [log, labels_asset(spec), live_performance_asset(spec)]
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, instance=instance, resources=resources_for(settings),
                             partition_key=DAY)  # fmt: skip
        assert result.success
        [materialization] = result.asset_materializations_for_node("iris__live_performance")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        history = con.execute(
            "SELECT labelled, estimate, estimated, estimated_rows FROM iris.live_performance "
            "WHERE metric = 'f1_macro' AND version = '1'"
        ).fetchall()
    return materialization.metadata, history


def test_a_version_is_estimated_without_labels_and_beside_the_realized_once_they_arrive(
    settings, registered_iris
):
    spec, model = registered_iris
    window = serve_shifted(settings, model)
    metadata, history = materialize_day(settings, spec)
    [(labelled, realized, estimate, rows)] = history
    assert (labelled, realized, rows) == (0, None, 1000)  # no label yet, every row estimated
    assert metadata["estimated_f1_macro/v1"].value == pytest.approx(estimate)
    assert metadata["calibration_rows/v1"].value > 1000  # the test side of iris.features
    assert "f1_macro/v1" not in metadata
    assert "estimated_f1_macro" in metadata["history_f1_macro"].value

    (settings.labels_dir / "iris").mkdir(parents=True)
    window[["request_id", "species"]].rename(columns={"species": "actual"}).to_csv(
        settings.labels_dir / "iris" / "all.csv", index=False
    )
    metadata, history = materialize_day(settings, spec)
    [(labelled, realized, again, rows)] = history
    assert (labelled, rows, again) == (1000, 1000, estimate)  # the labels change no estimate
    truth = (window["species"] == window["predicted"]).mean()
    assert metadata["f1_macro/v1"].value == pytest.approx(realized)
    # 1,000 rows: the realized F1 alone varies by ~0.015; the estimate stays within 0.05
    assert estimate == pytest.approx(realized, abs=0.05)
    assert truth < 0.8  # the shift is real: the holdout accuracy is 0.88
    assert "| iris | 1 | 1000 | 1000 | 100.0% |" in metadata["by_version"].value


def test_regression_is_not_estimated_and_says_so(builtin_specs):
    from mlops_assets.defs.monitoring import estimates
    from mlops_assets.defs.monitoring.labels import version_values, versions_markdown

    diabetes = builtin_specs["diabetes"]
    served = pd.DataFrame({"model": ["diabetes"], "version": ["1"], "prediction": [151.0],
                           "probabilities": [None]})  # fmt: skip
    assert estimates.by_version(diabetes, served, None) == {}
    realized = {("diabetes", "1"): {"labelled": 3, "r2": 0.4, "r2_low": 0.1, "r2_high": 0.6}}
    assert version_values(diabetes, realized, {}) == {
        "estimated": estimates.REGRESSION_NOTE,
        "r2/v1": 0.4,
    }
    table = versions_markdown(diabetes, realized, {}, {("diabetes", "1"): 4})
    assert "| diabetes | 1 | 4 | 3 | 75.0% | 0.4000 |" in table
    assert estimates.REGRESSION_NOTE in table


def test_a_history_written_before_the_estimates_gains_their_columns(settings, registered_iris):
    spec, model = registered_iris
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "CREATE TABLE iris.live_performance (day DATE, model VARCHAR, version VARCHAR, "
            "metric VARCHAR, estimate DOUBLE, low DOUBLE, high DOUBLE, labelled BIGINT, "
            "served BIGINT, median_delay_s DOUBLE)"
        )
        con.execute(
            "INSERT INTO iris.live_performance VALUES "
            "('2026-11-22', 'iris', '1', 'f1_macro', 0.9, 0.8, 0.95, 120, 150, 60)"
        )
    serve_shifted(settings, model, rows=200)
    materialize_day(settings, spec)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        rows = con.execute(
            "SELECT CAST(day AS VARCHAR), estimate, estimated_rows FROM iris.live_performance "
            "WHERE metric = 'f1_macro' ORDER BY day"
        ).fetchall()
    assert rows == [("2026-11-22", 0.9, None), (DAY, None, 200)]
