"""The challenger scored in the shadow: same request ids, the challenger's version, and the
champion's responses and prediction log as they were."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlops_assets_tests.serving.conftest import (
    IRIS_COLUMNS,
    IRIS_RECORD,
    iris_frame,
    manifest_for,
    publish,
)
from mlops_contract.bundle import (
    CHALLENGER_FILE,
    MODEL_FILE,
    PUBLISHED_AS_CHALLENGER,
    point_to,
    write_bundle,
)
from serving.config import config_from_env
from serving.prediction_log import read_records


def fit_stump() -> Pipeline:
    """A one-split tree: it tells setosa apart and calls everything else one class."""
    features, labels = iris_frame()
    prep = ColumnTransformer([("num", StandardScaler(), IRIS_COLUMNS)])
    model = DecisionTreeClassifier(max_depth=1, random_state=0)
    return Pipeline([("prep", prep), ("model", model)]).fit(features, labels)


def publish_challenger(models_dir, model, version: str) -> str:
    """A challenger bundle as the pipeline writes it, named by challenger.json."""
    bundle_id = f"v{version}-{uuid.uuid4().hex[:8]}"
    manifest = manifest_for("iris", version, **PUBLISHED_AS_CHALLENGER)
    write_bundle(models_dir / "iris", bundle_id, model, manifest, activate=False)
    point_to(models_dir / "iris", bundle_id, CHALLENGER_FILE)
    return bundle_id


def logged(server, stream: str) -> list[dict]:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = server.data_dir / stream / "iris" / f"{day}.jsonl"
    return read_records(path).records if path.exists() else []


def test_challenger_predictions_are_logged_beside_the_unchanged_champion(make_server, iris_model):
    server = make_server(log_flush_interval=0.1)
    publish(server.models_dir, "iris", iris_model, "1")
    stump = fit_stump()
    publish_challenger(server.models_dir, stump, "2")
    features, _ = iris_frame()
    rows = features.iloc[[0, 60, 110, 70, 130, 25]]
    records = [dict(zip(IRIS_COLUMNS, row, strict=True)) for row in rows.itertuples(index=False)]
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        server.wait_until(lambda: server.service.challengers.get("iris") is not None)
        one = http.post("/models/iris/predict", json=records[0], headers={"X-Request-ID": "one"})
        many = http.post("/models/iris/predict", json=records[1:], headers={"X-Request-ID": "b"})
    champion = iris_model.predict(rows).tolist()
    challenger = stump.predict(rows).tolist()
    assert champion != challenger  # else the test could not tell them apart
    # the answers are the champion's
    assert one.json()["version"] == many.json()["version"] == "1"
    assert [one.json()["prediction"], *many.json()["predictions"]] == champion

    server.wait_until(lambda: len(logged(server, "shadow")) == 6)
    server.wait_until(lambda: len(logged(server, "predictions")) == 6)
    main, shadow = logged(server, "predictions"), logged(server, "shadow")
    assert {line["version"] for line in main} == {"1"}
    assert [line["output"]["prediction"] for line in main] == champion
    assert [line["request_id"] for line in shadow] == ["one"] + ["b"] * 5
    assert {line["version"] for line in shadow} == {"2"}
    assert [line["output"]["prediction"] for line in shadow] == challenger
    assert [line["input"] for line in shadow] == [line["input"] for line in main]
    assert [line["timestamp"] for line in shadow] == [line["timestamp"] for line in main]
    metrics = server.client().get("/metrics").text
    assert 'mlops_shadow_predictions_total{model="iris",version="2"} 6.0' in metrics


@pytest.mark.parametrize("damage", ["tampered", "removed"])
def test_a_damaged_challenger_stops_being_shadowed_and_the_champion_serves_on(
    make_server, iris_model, damage
):
    server = make_server(log_flush_interval=0.1)
    publish(server.models_dir, "iris", iris_model, "1")
    bundle_id = publish_challenger(server.models_dir, fit_stump(), "2")
    bundle_dir = server.models_dir / "iris" / "bundles" / bundle_id
    with server.client() as http:
        server.wait_until(lambda: server.service.challengers.get("iris") is not None)
        http.post("/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "before"})
        server.wait_until(lambda: len(logged(server, "shadow")) == 1)
        if damage == "tampered":
            (bundle_dir / MODEL_FILE).write_bytes(b"not the challenger any more")
        else:
            shutil.rmtree(bundle_dir)
        server.wait_until(lambda: server.service.challengers.get("iris") is None)
        after = http.post(
            "/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "after"}
        )
        assert after.status_code == 200 and after.json()["version"] == "1"
        assert http.get("/ready").status_code == 200
    server.wait_until(lambda: len(logged(server, "predictions")) == 2)
    server.service.shadow.flush()
    assert [line["request_id"] for line in logged(server, "shadow")] == ["before"]


def test_a_share_of_zero_shadows_nothing(make_server, iris_model):
    server = make_server(log_flush_interval=0.1, shadow_share=0.0)
    publish(server.models_dir, "iris", iris_model, "1")
    publish_challenger(server.models_dir, fit_stump(), "2")
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        http.post("/models/iris/predict", json=IRIS_RECORD)
    server.wait_until(lambda: len(logged(server, "predictions")) == 1)
    server.service.shadow.flush()
    assert server.service.challengers.get("iris") is None and logged(server, "shadow") == []


def test_a_challenger_bundle_is_never_the_fallback_for_a_damaged_champion(
    make_server, iris_model, tmp_path
):
    data_dir = tmp_path / "damaged"
    publish(data_dir / "models", "iris", iris_model, "1")
    publish_challenger(data_dir / "models", fit_stump(), "2")  # newer than v1
    current = publish(data_dir / "models", "iris", iris_model, "3")
    (current / MODEL_FILE).write_bytes(b"not a model")
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: http.get("/models/iris").json()["loaded"])
        assert http.get("/models/iris").json()["version"] == "1"


def test_the_shadow_share_is_read_from_the_environment_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_SHADOW_SHARE", "0.25")
    assert config_from_env(tmp_path / "models").shadow_share == 0.25
    monkeypatch.setenv("MLOPS_SHADOW_SHARE", "1.5")
    with pytest.raises(ValueError, match=r"MLOPS_SHADOW_SHARE=1.5: a share of requests"):
        config_from_env(tmp_path / "models")
