"""Hot reload: new champions are picked up without a restart; broken bundles never replace a
working model."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlops_assets_tests.serving.conftest import ABALONE_RECORD, IRIS_RECORD, fit_abalone, publish
from mlops_contract.bundle import MODEL_FILE, POINTER_FILE, point_to


def test_empty_store_then_champion_appears(make_server, iris_model):
    server = make_server()
    with server.client() as http:
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert "champion_model" in ready.json()["detail"]
        missing = http.post("/models/iris/predict", json=IRIS_RECORD)
        assert missing.status_code == 503
        assert "iris/champion_model" in missing.json()["detail"]
        assert http.get("/models").json() == []

        publish(server.models_dir, "iris", iris_model, "1")
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        assert http.post("/models/iris/predict", json=IRIS_RECORD).json()["version"] == "1"


def test_new_version_and_new_dataset_are_picked_up(make_server, iris_model, abalone_model):
    server = make_server()
    publish(server.models_dir, "iris", iris_model, "1")
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        publish(server.models_dir, "iris", iris_model, "2")
        server.wait_until(lambda: http.get("/models/iris").json()["version"] == "2")
        assert http.post("/models/iris/predict", json=IRIS_RECORD).json()["version"] == "2"
        publish(server.models_dir, "abalone", abalone_model, "1")
        server.wait_until(
            lambda: http.post("/models/abalone/predict", json=ABALONE_RECORD).status_code == 200
        )
        text = http.get("/metrics").text
        assert 'mlops_model_info{model="iris",version="2"} 1.0' in text
        assert 'mlops_model_info{model="iris",version="1"}' not in text


def truncate_model(bundle: Path) -> None:
    path = bundle / MODEL_FILE
    path.write_bytes(path.read_bytes()[:100])


def wrong_checksum(bundle: Path) -> None:
    pass  # the pointer gets a wrong manifest sha256 (see publish_broken)


def missing_model(bundle: Path) -> None:
    (bundle / MODEL_FILE).unlink()


def wrong_classes(bundle: Path) -> None:
    pass  # published with classes that do not match the model (see publish_broken)


def publish_broken(models_dir: Path, model, version: str, breakage) -> Path:
    """Build a bundle elsewhere, break it, then move it in and point at it, so the server can
    never see the intact version."""
    extra = {"classes": ["a", "b", "c"]} if breakage is wrong_classes else {}
    scratch = models_dir.parent / "scratch"
    bundle = publish(scratch, "iris", model, version, **extra)
    breakage(bundle)
    dataset_dir = models_dir / "iris"
    target = dataset_dir / "bundles" / bundle.name
    shutil.move(bundle, target)
    if breakage is not wrong_checksum:
        point_to(dataset_dir, bundle.name)
        return target
    temporary = dataset_dir / "pointer.tmp"
    temporary.write_text(json.dumps({"bundle": bundle.name, "manifest_sha256": "0" * 64}))
    os.replace(temporary, dataset_dir / POINTER_FILE)
    return target


@pytest.mark.parametrize("breakage", [truncate_model, wrong_checksum, missing_model, wrong_classes])
def test_broken_bundle_keeps_old_model(make_server, iris_model, breakage):
    server = make_server()
    publish(server.models_dir, "iris", iris_model, "1")
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        publish_broken(server.models_dir, iris_model, "2", breakage)
        server.wait_until(lambda: http.get("/ready").json()["models"]["iris"]["load_error"])

        ready = http.get("/ready")
        assert ready.status_code == 200  # the old champion still serves
        assert ready.json()["models"]["iris"]["version"] == "1"
        described = http.get("/models/iris").json()
        assert described["version"] == "1" and described["load_error"]
        assert http.post("/models/iris/predict", json=IRIS_RECORD).json()["version"] == "1"
        text = http.get("/metrics").text
        assert 'mlops_model_load_failures_total{model="iris"} 1.0' in text
        assert 'mlops_model_load_error{model="iris"} 1.0' in text

        publish(server.models_dir, "iris", iris_model, "3")
        server.wait_until(lambda: http.get("/models/iris").json()["version"] == "3")
        assert http.get("/models/iris").json()["load_error"] is None
        assert 'mlops_model_load_error{model="iris"} 0.0' in http.get("/metrics").text


def test_first_bundle_broken_is_not_ready(make_server, iris_model):
    server = make_server()
    publish_broken(server.models_dir, iris_model, "1", missing_model)
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").json()["models"].get("iris"))
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert "iris" in ready.json()["detail"] and "missing" in ready.json()["detail"]
        response = http.post("/models/iris/predict", json=IRIS_RECORD)
        assert response.status_code == 503
        assert "iris/champion_model" in response.json()["detail"]


@pytest.mark.slow
def test_hot_swap_under_load(make_server):
    """Clients hammer the server while new champions land; nothing fails and every answer
    comes from a version that was current at some point during its request."""
    models = [fit_abalone(seed) for seed in range(3)]
    server = make_server(reload_interval=0.05)
    publish(server.models_dir, "abalone", models[0], "1")
    server.wait_until(lambda: server.service.store.model("abalone") is not None)

    history = [(time.monotonic(), "1")]  # (time the pointer moved, version)
    stop = threading.Event()
    results, failures = [], []

    def client_loop():
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = http.post("/models/abalone/predict", json=[ABALONE_RECORD] * 3)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                results.append((started, time.monotonic(), response.json()["version"]))

    clients = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in clients:
        thread.start()
    for number in range(2, 14):
        time.sleep(0.3)
        publish(server.models_dir, "abalone", models[number % 3], str(number))
        history.append((time.monotonic(), str(number)))
    time.sleep(0.5)
    stop.set()
    for thread in clients:
        thread.join()

    assert not failures
    assert len(results) > 100
    served = {version for _, _, version in results}
    assert len(served) >= 5
    for started, finished, version in results:
        assert _was_current(history, version, started, finished), (version, started, finished)


def _was_current(history, version, started, finished) -> bool:
    """Whether `version` was the published champion at some instant in [started, finished].

    A version becomes current when its pointer is written and stops when the next one is; the
    server may notice a new pointer up to one poll later, so allow that much slack."""
    slack = 0.5
    for index, (since, current) in enumerate(history):
        until = history[index + 1][0] if index + 1 < len(history) else float("inf")
        if current == version and since <= finished and started <= until + slack:
            return True
    return False
