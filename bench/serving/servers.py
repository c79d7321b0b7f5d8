"""Server processes: start in their own process group, wait for the ready check (the cold start),
stop (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.serving.subjects import Route, ServerSpec, Subject
from bench.serving.workspace import Workspace, tail

READY_TIMEOUT = 180.0


class ServerError(RuntimeError):
    """A server that did not start or answer as expected."""


@dataclass
class Running:
    spec: ServerSpec
    process: subprocess.Popen
    url: str
    cold_start_s: float
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(spec: ServerSpec, workspace: Workspace) -> Running:
    """Start a server in its own process group; wait for the first 200 from its ready path."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in spec.argv]
    env = {**workspace.base_env(), **dict(spec.env)}
    log = workspace.root / "logs" / f"{spec.name}-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=workspace.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(spec, process, f"http://127.0.0.1:{port}", 0.0, log)
    try:
        running.cold_start_s = wait_ready(running, started)
    except BaseException:
        stop_server(running)
        raise
    return running


def wait_ready(running: Running, started: float) -> float:
    url = running.url + running.spec.ready_path
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if running.process.poll() is not None:
            raise ServerError(f"{running.spec.name} exited:\n{tail(running.log)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise ServerError(
        f"{running.spec.name} not ready in {READY_TIMEOUT:.0f} s:\n{tail(running.log)}"
    )


def signal_group(process: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_server(running: Running) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after 15 s."""
    signal_group(running.process, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        running.process.wait(timeout=15)
    signal_group(running.process, signal.SIGKILL)
    running.process.wait(timeout=15)


def cold_start(spec: ServerSpec, workspace: Workspace) -> float:
    """Seconds from process start to ready, for one more start of the server (then stopped)."""
    server = start_server(spec, workspace)
    stop_server(server)
    return server.cold_start_s


@contextmanager
def serving(subject: Subject, workspace: Workspace) -> Iterator[dict[str, Running]]:
    """The subject's servers, started one after the other (so cold starts do not overlap)."""
    with ExitStack() as stack:
        running = {}
        for spec in subject.servers:
            server = start_server(spec, workspace)
            stack.callback(stop_server, server)
            running[spec.name] = server
        yield running


def route_url(running: dict[str, Running], route: Route) -> str:
    """The full URL of a route on the subject's running servers."""
    return running[route.server].url + route.path


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the servers are stopped on the way out."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
