"""The challenger scored in the shadow: same request ids, the challenger's version, and the
champion's responses and prediction log as they were."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlops_assets_tests.live_server import free_port
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
    # counted once the shadow process reports back, on the shadow thread's next round
    counted = 'mlops_shadow_predictions_total{model="iris",version="2"} 6.0'
    server.wait_until(lambda: counted in server.client().get("/metrics").text)


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


def test_a_killed_shadow_process_is_started_again_and_the_champion_never_notices(
    make_server, iris_model
):
    server = make_server(log_flush_interval=0.1)
    publish(server.models_dir, "iris", iris_model, "1")
    publish_challenger(server.models_dir, fit_stump(), "2")
    process = server.service.shadow.process
    with server.client() as http:
        server.wait_until(lambda: server.service.challengers.get("iris") is not None)
        http.post("/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "first"})
        server.wait_until(lambda: len(logged(server, "shadow")) == 1)
        killed = process.pid
        os.kill(killed, signal.SIGKILL)
        server.wait_until(lambda: not process.alive)
        answer = http.post(
            "/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "next"}
        )
        assert answer.status_code == 200 and answer.json()["version"] == "1"
        server.wait_until(lambda: len(logged(server, "shadow")) == 2)
    assert [line["request_id"] for line in logged(server, "shadow")] == ["first", "next"]
    assert process.pid != killed


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_the_shadow_process_ends_with_a_killed_server(tmp_path, iris_model):
    publish(tmp_path / "models", "iris", iris_model, "1")
    publish_challenger(tmp_path / "models", fit_stump(), "2")
    port = free_port()
    env = {**os.environ, "MLOPS_DATA_DIR": str(tmp_path), "MLOPS_API_KEY": ""}
    server = subprocess.Popen(
        [sys.executable, "-c", f"from serving.server import run; run(port={port})"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    shadow_log = tmp_path / "shadow" / "iris" / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{url}/ready"), "the server did not start")
        for _ in range(20):  # until the challenger is loaded: then one is shadowed
            httpx.post(f"{url}/models/iris/predict", json=IRIS_RECORD)
            if shadow_log.is_file():
                break
            time.sleep(0.5)
        assert shadow_log.is_file(), "nothing was shadowed"
        children = children_of(server.pid)  # the shadow process (and multiprocessing's helper)
        os.kill(server.pid, signal.SIGKILL)  # the server alone: its children are orphaned
        wait_for(lambda: all(gone(child) for child in children), f"left running: {children}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie waiting for its reaper."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def wait_for(predicate, failure: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)


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
