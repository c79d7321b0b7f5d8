"""`serving.server.run` in a process of its own: serves on loopback, one JSON log line a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from mlops_assets_tests.live_server import free_port
from mlops_assets_tests.serving.conftest import IRIS_RECORD, publish


def test_run_serves_and_logs_json_lines(tmp_path, iris_model):
    publish(tmp_path / "models", "iris", iris_model, "4")
    port = free_port()
    env = {**os.environ, "MLOPS_DATA_DIR": str(tmp_path), "MLOPS_API_KEY": ""}
    process = subprocess.Popen(
        [sys.executable, "-c", f"from serving.server import run; run(port={port})"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        response = httpx.post(
            f"{url}/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "abc-1"}
        )
        assert response.status_code == 200 and response.headers["x-request-id"] == "abc-1"
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    entry = next(line for line in lines if line.get("request_id") == "abc-1")
    assert entry["level"] == "info" and entry["timestamp"]
    assert entry["method"] == "POST" and entry["path"] == "/models/iris/predict"
    assert entry["status"] == 200 and entry["model"] == "iris" and entry["version"] == "4"
    assert entry["rows"] == 1 and entry["latency_ms"] > 0


def test_serving_does_not_import_the_pipeline_stack():
    code = (
        "import sys, serving.app, serving.server; "
        "print([m for m in ('dagster', 'mlflow', 'duckdb') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
