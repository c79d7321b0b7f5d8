"""`serving.server.run` in a process of its own: serves on loopback, one JSON log line a request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

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


def metric_total(metrics_text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def requests_counted(metrics_text: str, route: str) -> float:
    return metric_total(metrics_text, "mlops_http_requests_total", route=route)


@contextlib.contextmanager
def two_workers(data_dir: Path):
    """`python -m serving --workers 2` on a free port, its metrics folder under data_dir/tmp;
    yields the URL and that scratch folder once it is ready; a graceful stop at the end."""
    port, scratch = free_port(), data_dir / "tmp"
    scratch.mkdir()
    env = {**os.environ, "MLOPS_DATA_DIR": str(data_dir), "MLOPS_API_KEY": ""}
    env["TMPDIR"] = str(scratch)  # where the server makes its metrics folder
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield url, scratch
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # a graceful stop flushes the log
        process.wait(timeout=30)


def workers_counting(scratch: Path) -> tuple[Path, int]:
    """The shared metrics folder and how many workers wrote counters into it."""
    [shared] = list(scratch.glob("mlops-serve-metrics-*"))
    return shared, len({path.stem.rsplit("_", 1)[-1] for path in shared.glob("counter_*.db")})


def test_metrics_count_every_workers_requests_whichever_worker_answers(tmp_path, iris_model):
    publish(tmp_path / "models", "iris", iris_model, "4")
    with two_workers(tmp_path) as (url, scratch):
        sent = 60
        for _ in range(sent):  # a new connection each, so both workers answer some
            assert httpx.post(f"{url}/models/iris/predict", json=IRIS_RECORD).status_code == 200
        shared, workers = workers_counting(scratch)
        assert workers == 2, "both workers should have answered"
        for _ in range(8):
            text = httpx.get(f"{url}/metrics").text
            assert requests_counted(text, "/models/{name}/predict") == sent
            assert 'mlops_model_info{model="iris",version="4"} 1.0' in text
    assert not shared.exists(), "the server removes its metrics folder when it stops"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready").status_code == 200
    except httpx.TransportError:
        return False


def predictions_counted(metrics_text: str, model: str) -> float:
    return metric_total(metrics_text, "mlops_predictions_total", model=model)


async def _concurrent_predictions(url: str, count: int, connections: int) -> list[str]:
    """`count` single-record predictions over `connections` connections; their request ids."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def one(index: int) -> str:
            response = await http.post(
                "/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": f"r-{index}"}
            )
            assert response.status_code == 200, response.text
            return response.headers["x-request-id"]

        return await asyncio.gather(*(one(index) for index in range(count)))


def test_two_workers_under_concurrent_load_log_and_count_every_prediction(tmp_path, iris_model):
    """Batched requests on two workers: /metrics counts every request and row whichever worker
    answers the scrape, and the prediction log has exactly one line per answered request."""
    publish(tmp_path / "models", "iris", iris_model, "4")
    sent = 600
    with two_workers(tmp_path) as (url, scratch):
        answered = asyncio.run(_concurrent_predictions(url, sent, connections=16))
        assert workers_counting(scratch)[1] == 2, "both workers should have answered predictions"
        for _ in range(8):  # new connections: both workers answer scrapes
            text = httpx.get(f"{url}/metrics").text
            assert requests_counted(text, "/models/{name}/predict") == sent
            assert predictions_counted(text, "iris") == sent
    logged = [
        json.loads(line)["request_id"]
        for path in (tmp_path / "predictions" / "iris").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(logged) == sorted(answered) and len(set(logged)) == sent
