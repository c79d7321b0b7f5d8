"""Champions built by the real pipeline, served over HTTP: the issue's "done when" path."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlops_assets.build import build_dataset

pytestmark = pytest.mark.slow

# the request an existing abalone client (written against a FastAPI service) sends
ABALONE_RECORD = {
    "Sex": "M", "Length": 0.455, "Diameter": 0.365, "Height": 0.095, "Whole_weight": 0.514,
    "Shucked_weight": 0.2245, "Viscera_weight": 0.101, "Shell_weight": 0.15,
}  # fmt: skip
IRIS_RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def mlflow_predictions(settings, name: str, frame: pd.DataFrame):
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(frame)


def champion_version(settings, name: str) -> str:
    return str(
        MlflowClient(settings.tracking_uri).get_model_version_by_alias(name, "champion").version
    )


def test_iris_champion_is_served_with_labels_and_probabilities(
    settings, instance, builtin_specs, make_server
):
    assert build_dataset(builtin_specs["iris"], settings, instance).success
    server = make_server(settings.data_dir)
    with server.client() as client:
        server.wait_until(lambda: client.get("/ready").status_code == 200)
        answer = client.post(
            "/models/iris/predict",
            json=[IRIS_RECORD, {**IRIS_RECORD, "petal_length": 5.5, "petal_width": 2.1}],
        )
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == champion_version(settings, "iris")
    frame = pd.DataFrame([IRIS_RECORD, {**IRIS_RECORD, "petal_length": 5.5, "petal_width": 2.1}])
    assert body["predictions"] == list(mlflow_predictions(settings, "iris", frame))
    for probabilities in body["probabilities"]:
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert sum(probabilities.values()) == pytest.approx(1.0)


def test_abalone_client_request_works_as_is(
    settings, instance, builtin_specs, make_server, shared_abalone, monkeypatch
):
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", str(shared_abalone))
    assert build_dataset(builtin_specs["abalone"], settings, instance).success
    server = make_server(settings.data_dir)
    with server.client() as client:
        server.wait_until(lambda: client.get("/ready").status_code == 200)
        answer = client.post("/models/abalone/predict", json=ABALONE_RECORD)
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == champion_version(settings, "abalone")
    assert 5 < body["prediction"] < 20  # a plausible number of rings
    columns = {field: field.replace("_", " ") for field in ABALONE_RECORD}
    frame = pd.DataFrame([ABALONE_RECORD]).rename(columns=columns)
    assert np.isclose(body["prediction"], mlflow_predictions(settings, "abalone", frame)[0])
