"""The servers compared and their processes: the run's workspace (a temporary folder with its own
data dir, MLflow store and Dagster instance, the abalone source and the champion build), the
subjects (ours, the FastAPI peer, `mlflow models serve`, the no-model ceiling) with their routes,
and server processes: start in their own process group, ready check (the cold start), stop
(SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.report import REPO, SHARED_ABALONE

VENV_BIN = Path(sys.executable).parent

ABALONE_COLUMNS = [
    "Sex",
    "Length",
    "Diameter",
    "Height",
    "Whole weight",
    "Shucked weight",
    "Viscera weight",
    "Shell weight",
    "Rings",
]
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.data_dir / 'mlflow.db'}"

    def base_env(self) -> dict[str, str]:
        """The caller's environment without MLOPS_* / MLflow / Dagster settings, pointed here."""
        drop = ("MLOPS_", "MLFLOW_", "DAGSTER_")
        env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(REPO)
        env["MLOPS_DATA_DIR"] = str(self.data_dir)
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["DAGSTER_HOME"] = str(self.root / "dagster_home")
        return env


@contextmanager
def workspace_folder(reuse: Path | None) -> Iterator[Path]:
    """A fresh temporary folder (removed afterwards), or the one given with --reuse."""
    if reuse is not None:
        yield reuse.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        yield Path(folder)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ("" when there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def abalone_source(workspace: Workspace) -> tuple[Path, str]:
    """The abalone CSV to build from: MLOPS_SOURCE_ABALONE, the shared copy, or synthetic."""
    configured = os.environ.get("MLOPS_SOURCE_ABALONE")
    if configured and Path(configured).is_file():
        return Path(configured), "MLOPS_SOURCE_ABALONE"
    if SHARED_ABALONE.is_file():
        return SHARED_ABALONE, "shared UCI copy"
    path = workspace.root / "abalone.csv"
    write_synthetic_abalone(path)
    return path, "synthetic (UCI copy absent)"


def write_synthetic_abalone(path: Path, rows: int = 4177, seed: int = 0) -> None:
    """An abalone-shaped CSV with a header row and plausible, in-range values."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.15, 0.75, rows)
    whole = np.clip(2.2 * length**3 * rng.normal(1, 0.1, rows), 0.01, 2.8)
    frame = pd.DataFrame(
        {
            "Sex": rng.choice(["M", "F", "I"], rows),
            "Length": length.round(3),
            "Diameter": (0.8 * length * rng.normal(1, 0.03, rows)).round(3),
            "Height": (0.27 * length * rng.normal(1, 0.1, rows)).round(3),
            "Whole weight": whole.round(4),
            "Shucked weight": (0.43 * whole).round(4),
            "Viscera weight": (0.22 * whole).round(4),
            "Shell weight": (0.29 * whole).round(4),
            "Rings": np.clip((4 + 20 * length * rng.normal(1, 0.2, rows)).round(), 1, 29),
        }
    )
    frame["Rings"] = frame["Rings"].astype(int)
    frame.to_csv(path, index=False)


def read_abalone(path: Path) -> pd.DataFrame:
    first = path.open().readline()
    header = 0 if first.startswith("Sex") else None
    return pd.read_csv(path, header=header, names=ABALONE_COLUMNS)


def build_champions(workspace: Workspace, datasets: tuple[str, ...], source: Path) -> float:
    """`mlops build` in the workspace; returns its duration in seconds."""
    home = workspace.root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**workspace.base_env(), "MLOPS_SOURCE_ABALONE": str(source)}
    log = workspace.root / "build.log"
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(
            [str(VENV_BIN / "mlops"), "build", *datasets],
            cwd=workspace.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
        )
    if code != 0:
        raise RuntimeError(f"mlops build failed ({code}):\n{tail(log)}")
    return time.perf_counter() - started


def read_manifest(workspace: Workspace, dataset: str) -> tuple[dict, Path]:
    dataset_dir = workspace.models_dir / dataset
    bundle = json.loads((dataset_dir / "current.json").read_text())["bundle"]
    bundle_dir = dataset_dir / "bundles" / bundle
    return json.loads((bundle_dir / "manifest.json").read_text()), bundle_dir / "model.joblib"


def copy_peer_models(workspace: Workspace, datasets: tuple[str, ...]) -> Path:
    """The champions' fitted pipelines as `<dataset>.joblib`, where the FastAPI peer loads them."""
    folder = workspace.root / "peer_models"
    folder.mkdir(exist_ok=True)
    for dataset in datasets:
        shutil.copy(read_manifest(workspace, dataset)[1], folder / f"{dataset}.joblib")
    return folder


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]  # "{port}" is replaced by the port
    ready_path: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Route:
    server: str
    path: str
    bodies: str


@dataclass(frozen=True)
class Subject:
    key: str
    title: str
    servers: tuple[ServerSpec, ...]
    routes: dict[str, Route]
    note: str = ""
    wrk_cpus: str | None = None  # `taskset -c` list wrk is pinned to; None: unpinned
    connections: tuple[int, ...] | None = None  # one-record points only at these; None: all

    @property
    def cold_server(self) -> ServerSpec:
        return self.servers[0]


def peer_server(name: str, app: str, env: tuple[tuple[str, str], ...] = ()) -> ServerSpec:
    """One of bench/peers/ under uvicorn, one worker, no access log; ready at /health."""
    python = str(VENV_BIN / "python")
    base = (python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}")
    argv = (*base, "--workers", "1", "--log-level", "warning", "--no-access-log")
    return ServerSpec(name, argv, "/health", env)


def mlflow_server(dataset: str) -> ServerSpec:
    argv = (
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{dataset}@champion",
        "--env-manager",
        "local",
        "--no-conda",
        "-w",
        "1",
        "-p",
        "{port}",
    )
    return ServerSpec(f"mlflow-{dataset}", argv, "/ping")


def scenario_routes(
    with_iris: bool, single: Route, iris: Route, batch: Route | None = None
) -> dict[str, Route]:
    """Routes by scenario: single, list (when the subject takes lists), iris (when planned)."""
    routes = {"single": single}
    if batch is not None:
        routes["list"] = batch
    if with_iris:
        routes["iris"] = iris
    return routes


SHADOW_OFF = (("MLOPS_SHADOW_SHARE", "0"),)  # the challenger published for ours_shadow is ignored
SHADOW_CHALLENGER = "bench-challenger"


def publish_challenger(workspace: Workspace, dataset: str = "abalone") -> str:
    """The champion's model again, as another version published as its challenger
    (challenger.json): what `ours_shadow` scores in the shadow of every request, at the
    champion's own cost. Returns the challenger's version."""
    import joblib

    from mlops_contract.bundle import (
        CHALLENGER_FILE,
        PUBLISHED_AS_CHALLENGER,
        point_to,
        write_bundle,
    )

    manifest, model_path = read_manifest(workspace, dataset)
    dataset_dir = workspace.models_dir / dataset
    version = f"{manifest['version']}-shadow"
    if not (dataset_dir / "bundles" / SHADOW_CHALLENGER).is_dir():
        kept = {k: v for k, v in manifest.items() if k not in ("format", "bundle_id", "files")}
        kept.update(version=version, **PUBLISHED_AS_CHALLENGER)
        model = joblib.load(model_path)
        write_bundle(dataset_dir, SHADOW_CHALLENGER, model, kept, activate=False)
    point_to(dataset_dir, SHADOW_CHALLENGER, CHALLENGER_FILE)
    return version


def shadow_rows(workspace: Workspace, dataset: str = "abalone") -> int:
    """Rows the challenger scored in the shadow, as the shadow log holds them."""
    folder = workspace.data_dir / "shadow" / dataset
    return sum(
        sum(1 for line in path.open("rb") if line.strip()) for path in folder.glob("*.jsonl")
    )


def make_subjects(iris: bool, peer_models: Path) -> list[Subject]:
    model_dir = (("MODEL_DIR", str(peer_models)),)
    serve = (str(VENV_BIN / "mlops"), "serve", "--port", "{port}")
    ours = Subject(
        "ours",
        "ours (mlops serve)",
        (ServerSpec("ours", serve, "/ready", SHADOW_OFF),),
        scenario_routes(
            iris,
            single=Route("ours", "/models/abalone/predict", "records"),
            batch=Route("ours", "/models/abalone/predict", "records_list"),
            iris=Route("ours", "/models/iris/predict", "iris"),
        ),
    )
    fastapi_peer = Subject(
        "fastapi",
        "FastAPI peer",
        (peer_server("fastapi", "bench.peers.fastapi_server:app", model_dir),),
        scenario_routes(
            iris,
            single=Route("fastapi", "/predict", "records"),
            iris=Route("fastapi", "/iris/predict", "iris"),
        ),
        note="one record per request only, like the typical project: no list point",
    )
    mlflow = Subject(
        "mlflow",
        "mlflow models serve",
        (mlflow_server("abalone"), *((mlflow_server("iris"),) if iris else ())),
        scenario_routes(
            iris,
            single=Route("mlflow-abalone", "/invocations", "mlflow_records"),
            batch=Route("mlflow-abalone", "/invocations", "mlflow_list"),
            iris=Route("mlflow-iris", "/invocations", "mlflow_iris"),
        ),
    )
    ceiling = Subject(
        "ceiling",
        "ceiling (Litestar, no model)",
        (peer_server("ceiling", "bench.peers.ceiling_server:app"),),
        scenario_routes(
            iris,
            single=Route("ceiling", "/predict", "records"),
            iris=Route("ceiling", "/predict", "iris"),
        ),
    )
    ours_shadow = Subject(
        "ours_shadow",
        "ours, challenger in the shadow of 100%",
        (ServerSpec("ours-shadow", serve, "/ready", (("MLOPS_SHADOW_SHARE", "1"),)),),
        {"single": Route("ours-shadow", "/models/abalone/predict", "records")},
        note="a second copy of the champion, published as the challenger, scores every request "
        "off the request path",
    )
    ours_two_workers = Subject(
        "ours_w2",
        "ours, 2 workers (wrk pinned to core 1)",
        (ServerSpec("ours-w2", (*serve, "--workers", "2"), "/ready", SHADOW_OFF),),
        {"single": Route("ours-w2", "/models/abalone/predict", "records")},
        note="reported apart: two server processes on the 2 cores, wrk on core 1",
        wrk_cpus="1",
        connections=(32,),
    )
    return [ours, fastapi_peer, mlflow, ceiling, ours_shadow, ours_two_workers]


def select_subjects(subjects: list[Subject], keys: tuple[str, ...] | None) -> list[Subject]:
    """The subjects named (in the order given), or all of them."""
    if keys is None:
        return subjects
    known = {subject.key: subject for subject in subjects}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise SystemExit(f"unknown subject(s) {unknown}; known: {list(known)}")
    return [known[key] for key in keys]


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
