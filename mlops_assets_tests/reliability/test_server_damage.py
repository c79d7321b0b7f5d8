"""Damage on disk under a running server: bundles that rot, folders that vanish, a restart onto
a damaged current bundle, staging folders a crashed writer left behind."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from mlops_assets_tests.serving.conftest import IRIS_RECORD, fit_iris, publish
from mlops_contract.bundle import DRIFT_FILE, MODEL_FILE, POINTER_FILE

IRIS = fit_iris()


def flip_bytes(path: Path, keep_mtime: bool = False) -> None:
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:  # same size and mtime: only a full re-hash can notice
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def ready(http: httpx.Client) -> httpx.Response:
    return http.get("/ready")


def test_flipped_model_bytes_are_reported_while_the_model_keeps_serving(make_server, tmp_path):
    data_dir = tmp_path / "data"
    bundle = publish(data_dir / "models", "iris", IRIS, "1")
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        flip_bytes(bundle / MODEL_FILE)
        server.wait_until(lambda: ready(http).status_code == 503)

        detail = ready(http).json()["detail"]
        assert "iris" in detail and "sha256 mismatch" in detail and MODEL_FILE in detail
        described = http.get("/models/iris").json()
        assert described["loaded"] and "sha256 mismatch" in described["damage"]
        text = http.get("/metrics").text
        assert 'mlops_model_bundle_damaged{model="iris"} 1.0' in text
        assert 'mlops_model_load_failures_total{model="iris"} 1.0' in text
        assert http.post("/models/iris/predict", json=IRIS_RECORD).status_code == 200

        flip_bytes(bundle / MODEL_FILE)  # repaired: intact again
        server.wait_until(lambda: ready(http).status_code == 200)
        assert http.get("/models/iris").json()["damage"] is None
        assert 'mlops_model_bundle_damaged{model="iris"} 0.0' in http.get("/metrics").text


def test_damage_keeping_size_and_mtime_is_found_by_the_slow_full_rehash(make_server, tmp_path):
    data_dir = tmp_path / "data"
    bundle = publish(data_dir / "models", "iris", IRIS, "1")
    server = make_server(data_dir, verify_interval=0.5)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        flip_bytes(bundle / MODEL_FILE, keep_mtime=True)
        server.wait_until(lambda: ready(http).status_code == 503, timeout=5)
        assert "sha256 mismatch" in http.get("/models/iris").json()["damage"]


def test_deleted_models_folder_makes_every_model_not_ready(make_server, tmp_path):
    data_dir = tmp_path / "data"
    publish(data_dir / "models", "iris", IRIS, "1")
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        shutil.rmtree(data_dir / "models")
        server.wait_until(lambda: ready(http).status_code == 503)
        assert "iris" in ready(http).json()["detail"]
        assert "gone" in http.get("/models/iris").json()["damage"]
        assert http.post("/models/iris/predict", json=IRIS_RECORD).status_code == 200


def test_vanished_dataset_folder_is_named_in_ready(make_server, tmp_path):
    data_dir = tmp_path / "data"
    publish(data_dir / "models", "iris", IRIS, "1")
    shutil.copytree(data_dir / "models" / "iris", data_dir / "models" / "iris_copy")
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        shutil.rmtree(data_dir / "models" / "iris_copy")
        server.wait_until(lambda: ready(http).status_code == 503)
        body = ready(http).json()
        assert "iris_copy" in body["detail"] and "damage" not in body["models"]["iris"]


def test_restart_onto_a_damaged_bundle_falls_back_to_the_newest_intact_one(make_server, tmp_path):
    data_dir = tmp_path / "data"
    models_dir = data_dir / "models"
    publish(models_dir, "iris", IRIS, "1")
    time.sleep(0.01)
    older = publish(models_dir, "iris", IRIS, "2")
    time.sleep(0.01)
    current = publish(models_dir, "iris", IRIS, "3")
    flip_bytes(current / MODEL_FILE)
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        described = http.get("/models/iris").json()
        assert described["version"] == "2" and described["bundle_id"] == older.name
        assert described["fallback_from"] == current.name
        assert "sha256 mismatch" in described["load_error"]
        assert http.post("/models/iris/predict", json=IRIS_RECORD).json()["version"] == "2"
        assert ready(http).json()["models"]["iris"]["fallback_from"] == current.name

        publish(models_dir, "iris", IRIS, "4")  # a new champion replaces the fallback
        server.wait_until(lambda: http.get("/models/iris").json()["version"] == "4")
        assert http.get("/models/iris").json()["fallback_from"] is None


def test_stale_staging_folders_are_removed_at_start_and_never_loaded(make_server, tmp_path):
    data_dir = tmp_path / "data"
    bundles = publish(data_dir / "models", "iris", IRIS, "1").parent
    stale, fresh = bundles / ".v9-abandoned", bundles / ".v10-writing"
    shutil.copytree(bundles / next(p.name for p in bundles.iterdir()), stale)
    fresh.mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        assert not stale.exists() and fresh.exists()  # a young one may still be being written
        assert http.get("/models/iris").json()["version"] == "1"


def test_garbage_pointer_is_reported_while_the_model_keeps_serving(make_server, tmp_path):
    data_dir = tmp_path / "data"
    bundle = publish(data_dir / "models", "iris", IRIS, "1")
    pointer = data_dir / "models" / "iris" / POINTER_FILE
    intact = pointer.read_bytes()
    server = make_server(data_dir)
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        pointer.write_bytes(b"\x00garbage")
        server.wait_until(lambda: ready(http).status_code == 503)
        assert POINTER_FILE in ready(http).json()["detail"]
        assert 'mlops_model_pointer_error{model="iris"} 1.0' in http.get("/metrics").text
        answer = http.post("/models/iris/predict", json=IRIS_RECORD)
        assert answer.status_code == 200 and answer.json()["version"] == "1"

        pointer.write_bytes(intact)
        server.wait_until(lambda: ready(http).status_code == 200)
        assert 'mlops_model_pointer_error{model="iris"} 0.0' in http.get("/metrics").text
        assert http.get("/models/iris").json()["bundle_id"] == bundle.name


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_restart_without_a_readable_pointer_serves_the_newest_intact_bundle(
    make_server, tmp_path, damage
):
    models_dir = tmp_path / "data" / "models"
    publish(models_dir, "iris", IRIS, "1")
    time.sleep(0.01)
    newest = publish(models_dir, "iris", IRIS, "2")
    pointer = models_dir / "iris" / POINTER_FILE
    pointer.write_text("{") if damage == "garbage" else pointer.unlink()
    server = make_server(tmp_path / "data")
    with server.client() as http:
        server.wait_until(lambda: http.get("/models/iris").json().get("loaded") is True)
        described = http.get("/models/iris").json()
        assert described["bundle_id"] == newest.name and POINTER_FILE in described["pointer_error"]
        assert http.post("/models/iris/predict", json=IRIS_RECORD).json()["version"] == "2"
        assert ready(http).status_code == 503 and POINTER_FILE in ready(http).json()["detail"]

        publish(models_dir, "iris", IRIS, "3")  # the next champion writes a good pointer
        server.wait_until(lambda: ready(http).status_code == 200)
        assert http.get("/models/iris").json()["version"] == "3"


@pytest.mark.parametrize("target", ["model", "pointer", "drift"])
def test_a_fifo_in_place_of_a_file_blocks_no_reload(make_server, tmp_path, target):
    data_dir = tmp_path / "data"
    bundle = publish(data_dir / "models", "iris", IRIS, "1")
    server = make_server(data_dir, verify_interval=0.2)
    paths = {
        "model": bundle / MODEL_FILE,
        "pointer": data_dir / "models" / "iris" / POINTER_FILE,
        "drift": data_dir / "models" / "iris" / DRIFT_FILE,
    }
    with server.client() as http:
        server.wait_until(lambda: ready(http).status_code == 200)
        paths[target].unlink(missing_ok=True)
        os.mkfifo(paths[target])
        if target != "drift":  # a FIFO bundle file or pointer is damage, reported
            server.wait_until(lambda: ready(http).status_code == 503)
            assert "not a regular file" in ready(http).json()["detail"]
        time.sleep(0.5)  # a few reload ticks
        publish(data_dir / "models", "iris", IRIS, "2")  # reloads still happen
        server.wait_until(lambda: http.get("/models/iris").json()["version"] == "2", timeout=5)
        assert ready(http).status_code == 200
