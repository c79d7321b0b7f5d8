"""`mlops serve`'s HTTP layer (serving.server.run in a process of its own): oversized headers
and malformed requests are answered before the app, as JSON, logged and counted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mlops_assets_tests.live_server import free_port
from mlops_assets_tests.serving.conftest import IRIS_RECORD, fit_iris, publish


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exchange(self, request: bytes) -> bytes:
        """Send raw bytes, return everything the server answers before closing."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        return received

    def stop(self) -> list[dict]:
        os.killpg(self.process.pid, signal.SIGTERM)
        stdout, _ = self.process.communicate(timeout=30)
        return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def start_process(data_dir, **env: str) -> ServerProcess:
    """`serving.server.run` over data_dir in its own process group, once it answers /ready."""
    port = free_port()
    env = {**os.environ, "MLOPS_DATA_DIR": str(data_dir), "MLOPS_API_KEY": "secret", **env}
    env.pop("MLOPS_MAX_HEADER_BYTES", None)
    process = subprocess.Popen(
        [sys.executable, "-c", f"from serving.server import run; run(port={port})"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = ServerProcess(process, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.url}/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def kill(server: ServerProcess) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("protocol")
    publish(data_dir / "models", "iris", fit_iris(), "1")
    server = start_process(data_dir)
    yield server
    kill(server)


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_headers_over_16_kib_get_431_before_the_app(served):
    big = b"k" * (17 * 1024)
    answer = served.exchange(
        b"POST /models/iris/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: " + big + b"\r\n\r\n"
    )
    status, body = status_and_body(answer)
    assert status == 431 and "MLOPS_MAX_HEADER_BYTES" in body["detail"]
    # just under the limit is still an ordinary request (401: wrong key)
    small = httpx.post(
        f"{served.url}/models/iris/predict", headers={"X-API-Key": "k" * 15_000}, json={}
    )
    assert small.status_code == 401


def test_a_huge_header_is_cut_off_early_and_health_stays_fast(served):
    """The issue's 200 MB header: the server must stop reading long before the client ends."""
    sent = 0
    finished = threading.Event()

    def send_huge_header() -> None:
        nonlocal sent
        chunk = b"k" * (1 << 20)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-API-Key: ")
                for _ in range(200):
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server closed the connection: what this test wants
        finished.set()

    started = time.monotonic()
    thread = threading.Thread(target=send_huge_header, daemon=True)
    thread.start()
    assert httpx.get(f"{served.url}/health", timeout=5).status_code == 200
    assert finished.wait(10), "the server kept reading the header"
    assert time.monotonic() - started < 10
    assert sent < 50 * (1 << 20)  # kernel buffers aside, the server stopped reading early


def predict_request(body: bytes, extra_header: bytes = b"") -> bytes:
    return (
        b"POST /models/iris/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: secret\r\n"
        + extra_header
        + b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def statuses(answer: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line[:9] == b"HTTP/1.1 "]


def test_a_large_body_is_not_counted_as_headers(served):
    """Head and a 40 KiB body in one write, twice on one connection: both scored."""
    body = json.dumps([IRIS_RECORD] * 500).encode()
    assert len(body) > 40 * 1024
    request = predict_request(body)
    closing = request.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    assert statuses(served.exchange(request + closing)) == [200, 200]


def test_each_request_on_a_connection_has_its_own_header_limit(served):
    """Pipelined in one write: requests under the limit are scored, the one over it gets 431."""
    body = json.dumps(IRIS_RECORD).encode()
    near_limit = b"X-Pad: " + b"p" * 15_000 + b"\r\n"
    over_limit = b"X-Pad: " + b"p" * (17 * 1024) + b"\r\n"
    requests = [predict_request(body, near_limit) for _ in range(3)]
    answer = served.exchange(b"".join(requests) + predict_request(body, over_limit))
    assert statuses(answer) == [200, 200, 200, 431]


def test_malformed_requests_are_json_logged_and_counted(served):
    status, body = status_and_body(served.exchange(b"NOT A REQUEST\r\n\r\n"))
    assert status == 400 and "malformed HTTP request" in body["detail"]
    status, _ = status_and_body(
        served.exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nBad\x00: 1\r\n\r\n")
    )
    assert status == 400
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'mlops_http_rejected_before_app_total{status="400"} 2.0' in metrics
    assert 'mlops_http_rejected_before_app_total{status="431"}' in metrics


def test_a_client_that_half_closes_after_sending_gets_every_answer(served):
    """shutdown(SHUT_WR) after the requests: both are answered, then the server closes."""
    body = json.dumps(IRIS_RECORD).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(predict_request(body) + predict_request(body))
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert statuses(answer_after(sock)) == [200, 200]
        assert time.monotonic() - started < 5  # closed after the answers, not at keep-alive's end
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")  # a head that can never complete
        sock.shutdown(socket.SHUT_WR)
        assert answer_after(sock) == b""


def test_every_server_log_line_is_json(served):
    served.exchange(b"NOT A REQUEST\r\n\r\n")
    lines = served.stop()  # raises on any line that is not JSON
    rejected = [line for line in lines if line.get("logger") == "serving.http"]
    assert rejected and all(line["status"] in (400, 431) for line in rejected)
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)


@pytest.fixture
def impatient(tmp_path) -> Iterator[ServerProcess]:
    """A server with 1 s head and body timeouts and room for 40 connections."""
    publish(tmp_path / "models", "iris", fit_iris(), "1")
    server = start_process(
        tmp_path, MLOPS_HEAD_TIMEOUT_S="1", MLOPS_BODY_TIMEOUT_S="1", MLOPS_MAX_CONNECTIONS="40"
    )
    yield server
    kill(server)


def answer_after(sock: socket.socket, send: bytes = b"") -> bytes:
    if send:
        sock.sendall(send)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_slow_headers_idle_and_slow_bodies_are_timed_out(impatient):
    address = ("127.0.0.1", impatient.port)
    with socket.create_connection(address, timeout=10) as idle:
        started = time.monotonic()
        assert answer_after(idle).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5
    with socket.create_connection(address, timeout=10) as slow_head:
        status, body = status_and_body(answer_after(slow_head, b"GET /health HTTP/1.1\r\nHo"))
        assert status == 408 and "headers not received" in body["detail"]
    with socket.create_connection(address, timeout=10) as slow_body:
        head = b"POST /models/iris/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: secret\r\n"
        head += b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        status, body = status_and_body(answer_after(slow_body, head))
        assert status == 408 and "body not received" in body["detail"]
    metrics = httpx.get(f"{impatient.url}/metrics").text
    assert 'mlops_http_rejected_before_app_total{status="408"} 3.0' in metrics


def test_idle_connections_beyond_the_limit_get_503_until_they_time_out(impatient):
    address = ("127.0.0.1", impatient.port)
    idle = [socket.create_connection(address, timeout=10) for _ in range(60)]
    try:
        time.sleep(0.3)
        assert httpx.get(f"{impatient.url}/health").status_code == 503
        deadline = time.monotonic() + 10  # the idle ones are closed by the head timeout
        while httpx.get(f"{impatient.url}/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for sock in idle:
            sock.close()
