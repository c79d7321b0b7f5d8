"""Fixtures: bundles fitted on iris and abalone-shaped data, real uvicorn servers on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_assets.lib.contract import input_contract
from mlops_assets.lib.spec import load_spec
from mlops_assets.settings import builtin_spec_path
from mlops_assets_tests.live_server import LiveServer, start_server
from mlops_contract.bundle import write_bundle

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
ABALONE_NUMERIC = [
    "Length", "Diameter", "Height", "Whole weight", "Shucked weight", "Viscera weight",
    "Shell weight",
]  # fmt: skip
ABALONE_RECORD = {
    "Sex": "M", "Length": 0.455, "Diameter": 0.365, "Height": 0.095, "Whole_weight": 0.514,
    "Shucked_weight": 0.2245, "Viscera_weight": 0.101, "Shell_weight": 0.15,
}  # fmt: skip
IRIS_RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris()
    features = pd.DataFrame(data.data, columns=IRIS_COLUMNS)
    labels = pd.Series(np.array(IRIS_CLASSES, dtype=object)[data.target], name="species")
    return features, labels


def abalone_frame(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.1, 0.8, rows)
    frame = pd.DataFrame(
        {
            "Sex": rng.choice(np.array(["M", "F", "I"], dtype=object), rows),
            "Length": length,
            "Diameter": length * 0.8,
            "Height": length * 0.25,
            "Whole weight": length**3 * 3,
            "Shucked weight": length**3 * 1.3,
            "Viscera weight": length**3 * 0.6,
            "Shell weight": length**3 * 0.9,
        }
    )
    rings = (length * 20 + rng.normal(0, 1, rows)).round().clip(1, 29).astype(int)
    return frame, pd.Series(rings, name="Rings")


def diabetes_frame() -> tuple[pd.DataFrame, pd.Series]:
    data = load_diabetes(scaled=False, as_frame=True)
    features = data.data.astype({"sex": int})
    return features, data.target


def fit_diabetes() -> Pipeline:
    """Scaled ridge regression: the scaler's division overflows on values near float's maximum."""
    features, target = diabetes_frame()
    prep = ColumnTransformer([("num", StandardScaler(), list(features.columns))])
    return Pipeline([("prep", prep), ("model", Ridge())]).fit(features, target)


def fit_iris() -> Pipeline:
    features, labels = iris_frame()
    pipeline = Pipeline(
        [
            ("prep", ColumnTransformer([("num", StandardScaler(), IRIS_COLUMNS)])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    return pipeline.fit(features, labels)


def fit_abalone(seed: int = 0) -> Pipeline:
    features, rings = abalone_frame(seed=seed)
    prep = ColumnTransformer(
        [
            ("sex", OneHotEncoder(handle_unknown="ignore"), ["Sex"]),
            ("num", "passthrough", ABALONE_NUMERIC),
        ]
    )
    model = HistGradientBoostingRegressor(max_iter=30, random_state=seed)
    return Pipeline([("prep", prep), ("model", model)]).fit(features, rings)


TRAINING_FRAMES = {"iris": iris_frame, "abalone": abalone_frame, "diabetes": diabetes_frame}


def manifest_for(dataset: str, version: str, **extra) -> dict:
    """The manifest the pipeline writes, its contract's examples from the training frame."""
    spec = load_spec(builtin_spec_path(dataset))
    classes = IRIS_CLASSES if spec.task == "classification" else None
    return {
        "name": dataset,
        "version": version,
        "task": spec.task,
        "target": spec.target,
        **input_contract(spec, TRAINING_FRAMES[dataset]()[0]),
        "classes": classes,
        "metrics": {f"test_{spec.selection_metric}": 0.9},
        "selection_metric": spec.selection_metric,
        "trained_at": "2025-01-01T00:00:00+00:00",
        "promoted_at": "2025-01-01T00:00:00+00:00",
        "mlflow_run_id": f"run-{version}",
        "model_uri": f"models:/{dataset}/{version}",
        "data_version": f"data-{version}",
        "dagster_run_id": "dagster-run",
        **extra,
    }


def publish(models_dir: Path, dataset: str, model, version: str, **extra) -> Path:
    """Write a bundle the way the pipeline does and point the data set at it."""
    bundle_id = f"v{version}-{uuid.uuid4().hex[:8]}"
    manifest = manifest_for(dataset, version, **extra)
    return write_bundle(models_dir / dataset, bundle_id, model, manifest)


@pytest.fixture(scope="session")
def iris_model() -> Pipeline:
    return fit_iris()


@pytest.fixture(scope="session")
def abalone_model() -> Pipeline:
    return fit_abalone()


@pytest.fixture(scope="session")
def live(tmp_path_factory, iris_model, abalone_model) -> Iterator[LiveServer]:
    """One server with an iris classifier and an abalone regressor, shared by contract tests."""
    data_dir = tmp_path_factory.mktemp("live")
    publish(data_dir / "models", "iris", iris_model, "1")
    publish(data_dir / "models", "abalone", abalone_model, "3")
    server = start_server(data_dir)
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as http:
        yield http
