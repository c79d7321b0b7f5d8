"""A build killed after publishing its bundle but before moving the alias and writing the history:
the next build's first step makes pointer, alias and history agree (real MLflow, real DuckDB)."""

from __future__ import annotations

import contextlib

import duckdb
import mlflow
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression

from mlops_assets.lib import registry
from mlops_assets.lib.reconcile import reconcile_champion
from mlops_contract.bundle import write_bundle


def registered_version(name: str) -> str:
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LinearRegression().fit([[0], [1]], [0, 1]), name="model")
    return registry.register(name, info.model_uri, {})


def test_the_next_build_completes_an_interrupted_promotion(settings, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    connect = lambda: contextlib.closing(duckdb.connect(str(warehouse)))  # noqa: E731
    first, second = registered_version("toy"), registered_version("toy")
    registry.set_alias("toy", registry.CHAMPION, first)
    dataset_dir = settings.models_dir / "toy"
    manifest = {
        "name": "toy", "version": second, "task": "regression", "metrics": {"test_r2": 0.9},
        "promoted_at": "2026-12-01T10:00:00+00:00", "dagster_run_id": "killed-run",
    }  # fmt: skip
    # what the killed build left: v2's bundle published and current, alias and history not
    write_bundle(dataset_dir, "v2-killed", LinearRegression().fit([[0]], [0]), manifest)

    notes = reconcile_champion("toy", dataset_dir, connect)

    assert registry.champion_version(MlflowClient(), "toy").version == int(second)
    with connect() as con:
        rows = con.execute("SELECT version, previous_version, reason FROM toy.champion_history")
        assert rows.fetchall() == [(second, first, "reconciled")]
    assert len(notes) == 2 and f"v{second}" in notes[0]
    assert reconcile_champion("toy", dataset_dir, connect) == ()  # agreeing state: nothing to do
