"""Serving benchmark: our server side by side with a typical FastAPI peer, `mlflow models serve`
and a no-model Litestar ceiling, all serving the same abalone champion, loaded with wrk.

    uv run python -m bench.serving          # full run; rewrites docs/benchmarks.md "## Serving"
    uv run python -m bench.serving --smoke  # CI: 8 connections, 2 s, 1 round, abalone only

Everything runs on loopback inside a temporary folder (its own data dir, MLflow store and Dagster
instance); every process started here is stopped here. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.report import machine_facts, write_section

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
WRK = Path("/usr/bin/wrk")
RESULTS_DIR = REPO / "bench" / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_TITLE = "Serving"
SHARED_ABALONE = REPO.parent / "shared" / "data" / "abalone.csv"
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
CHECK_RECORDS = 200
READY_TIMEOUT = 180.0
BUILD_TIMEOUT = 900.0
TARGET_PEER_RATIO = 30.0
TARGET_CEILING_RATIO = 0.5
TARGET_P99_MS = 50.0
PACKAGES = [
    "litestar",
    "uvicorn",
    "uvloop",
    "httptools",
    "msgspec",
    "fastapi",
    "pydantic",
    "mlflow",
    "scikit-learn",
    "pandas",
    "numpy",
]

WRK_SCRIPT = r"""
-- POST JSON bodies read from a file (one document a line), in turn; counts non-2xx answers.
local requests = {}
local position = 0
local threads = {}
non2xx = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(requests, wrk.format("POST", nil, headers, line))
    end
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, _)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "non2xx": %d, "p50_us": %.1f, "p99_us": %.1f, ' ..
    '"max_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, bad,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# ---------------------------------------------------------------------------- plan and workspace


@dataclass(frozen=True)
class Plan:
    smoke: bool
    connections: tuple[int, ...]
    duration: int
    rounds: int
    cold_starts: int
    datasets: tuple[str, ...]
    headline: int  # the connection count the targets are evaluated at
    list_rows: int = 1000
    list_connections: int = 8
    iris_connections: int = 32
    warmup: int = 1
    wrk_threads: int = 1
    wrk_timeout: int = 10


FULL_DURATION = 10  # 15 s per point takes the full run past 20 minutes on 2 cores


def make_plan(args: argparse.Namespace) -> Plan:
    if args.smoke:
        return Plan(True, (8,), args.duration or 2, args.rounds or 1, 1, ("abalone",), 8)
    duration, rounds = args.duration or FULL_DURATION, args.rounds or 3
    return Plan(False, (1, 8, 32, 128), duration, rounds, 3, ("abalone", "iris"), 32)


def estimated_seconds(plan: Plan) -> float:
    """Load, warm-ups and roughly 10 s per server start, per round; plus the build."""
    iris = "iris" in plan.datasets
    points = 4 * len(plan.connections) + 2 + 4 * iris
    routes, servers = 6 + 4 * iris, 4 + iris
    per_round = points * (plan.duration + 0.3) + routes * plan.warmup + 10 * servers
    return plan.rounds * per_round + 60


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


# ---------------------------------------------------------------------------- data and champions


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


# ---------------------------------------------------------------------------- request bodies


@dataclass(frozen=True)
class Records:
    """Input records keyed by API field name, and the field -> training column mapping."""

    rows: list[dict]
    columns: dict[str, str]

    def as_columns(self, rows: list[dict] | None = None) -> list[dict]:
        return [
            {self.columns[key]: value for key, value in row.items()} for row in rows or self.rows
        ]


def api_records(frame: pd.DataFrame, manifest: dict) -> Records:
    columns = {item["field"]: item["column"] for item in manifest["inputs"]}
    renamed = frame[list(columns.values())].set_axis(list(columns), axis=1)
    return Records(renamed.to_dict("records"), columns)


def abalone_records(source: Path, manifest: dict, count: int, seed: int) -> Records:
    frame = read_abalone(source)
    sample = frame.sample(n=count, random_state=seed, replace=count > len(frame))
    return api_records(sample, manifest)


def iris_records(manifest: dict) -> Records:
    from sklearn.datasets import load_iris

    data = load_iris().data
    columns = [item["column"] for item in manifest["inputs"]]
    return api_records(pd.DataFrame(data, columns=columns), manifest)


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def write_bodies(folder: Path, name: str, bodies: list[str]) -> Path:
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(bodies) + "\n")
    return path


def make_bodies(workspace: Workspace, plan: Plan, source: Path) -> tuple[dict[str, Path], Records]:
    """Body files by kind, and the abalone records the identical-prediction check scores."""
    folder = workspace.root / "bodies"
    folder.mkdir(exist_ok=True)
    manifest = read_manifest(workspace, "abalone")[0]
    single = abalone_records(source, manifest, CHECK_RECORDS, seed=1)
    lists = [abalone_records(source, manifest, plan.list_rows, seed=s) for s in (2, 3, 4)]
    bodies = {
        "records": [dumps(row) for row in single.rows],
        "mlflow_records": [dumps({"dataframe_records": [row]}) for row in single.as_columns()],
        "records_list": [dumps(batch.rows) for batch in lists],
        "mlflow_list": [dumps({"dataframe_records": batch.as_columns()}) for batch in lists],
    }
    if "iris" in plan.datasets:
        iris = iris_records(read_manifest(workspace, "iris")[0])
        bodies["iris"] = [dumps(row) for row in iris.rows]
        bodies["mlflow_iris"] = [dumps({"dataframe_records": [row]}) for row in iris.as_columns()]
    return {kind: write_bodies(folder, kind, items) for kind, items in bodies.items()}, single


# ---------------------------------------------------------------------------- subjects


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

    @property
    def cold_server(self) -> ServerSpec:
        return self.servers[0]


def uvicorn_argv(app: str, *extra: str) -> tuple[str, ...]:
    python = str(VENV_BIN / "python")
    base = (python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}")
    return (*base, "--workers", "1", "--log-level", "warning", *extra)


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


def make_subjects(plan: Plan, peer_models: Path) -> list[Subject]:
    iris = "iris" in plan.datasets
    ours = Subject(
        "ours",
        "ours (mlops serve)",
        (ServerSpec("ours", (str(VENV_BIN / "mlops"), "serve", "--port", "{port}"), "/ready"),),
        {
            "single": Route("ours", "/models/abalone/predict", "records"),
            "list": Route("ours", "/models/abalone/predict", "records_list"),
            **({"iris": Route("ours", "/models/iris/predict", "iris")} if iris else {}),
        },
    )
    fastapi_spec = ServerSpec(
        "fastapi",
        uvicorn_argv("bench.peers.fastapi_server:app", "--no-access-log"),
        "/health",
        (("MODEL_DIR", str(peer_models)),),
    )
    fastapi_peer = Subject(
        "fastapi",
        "FastAPI peer",
        (fastapi_spec,),
        {
            "single": Route("fastapi", "/predict", "records"),
            **({"iris": Route("fastapi", "/iris/predict", "iris")} if iris else {}),
        },
        note="one record per request only, like the typical project: no list point",
    )
    mlflow_servers = (mlflow_server("abalone"), *((mlflow_server("iris"),) if iris else ()))
    mlflow = Subject(
        "mlflow",
        "mlflow models serve",
        mlflow_servers,
        {
            "single": Route("mlflow-abalone", "/invocations", "mlflow_records"),
            "list": Route("mlflow-abalone", "/invocations", "mlflow_list"),
            **({"iris": Route("mlflow-iris", "/invocations", "mlflow_iris")} if iris else {}),
        },
    )
    ceiling_spec = ServerSpec(
        "ceiling", uvicorn_argv("bench.peers.ceiling_server:app", "--no-access-log"), "/health"
    )
    ceiling = Subject(
        "ceiling",
        "ceiling (Litestar, no model)",
        (ceiling_spec,),
        {
            "single": Route("ceiling", "/predict", "records"),
            **({"iris": Route("ceiling", "/predict", "iris")} if iris else {}),
        },
    )
    return [ours, fastapi_peer, mlflow, ceiling]


# ---------------------------------------------------------------------------- processes


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


def tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


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


# ---------------------------------------------------------------------------- load


def run_wrk(url: str, bodies: Path, connections: int, seconds: int, plan: Plan, lua: Path) -> dict:
    threads = min(plan.wrk_threads, connections)
    argv = [str(WRK), f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += [f"--timeout={plan.wrk_timeout}s", "-s", str(lua), url, "--", str(bodies)]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if completed.returncode != 0 or line is None:
        raise ServerError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return summarize_wrk(raw)


def summarize_wrk(raw: dict) -> dict:
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non2xx": raw["non2xx"],
        "socket_errors": socket_errors,
        "errors": raw["non2xx"] + socket_errors,
    }


def scenario_points(subject: Subject, plan: Plan) -> list[tuple[str, int]]:
    """(scenario, connections) pairs the subject is measured at, in order."""
    points = [("single", connections) for connections in plan.connections]
    if "list" in subject.routes:
        points.append(("list", plan.list_connections))
    if "iris" in subject.routes:
        points.append(("iris", plan.iris_connections))
    return points


def measure_subject(
    subject: Subject, running: dict[str, Running], context: Context, round_index: int
) -> list[dict]:
    plan = context.plan
    for route in subject.routes.values():  # warm-up, not recorded
        url = running[route.server].url + route.path
        run_wrk(url, context.bodies[route.bodies], 8, plan.warmup, plan, context.lua)
    points = []
    for scenario, connections in scenario_points(subject, plan):
        route = subject.routes[scenario]
        url = running[route.server].url + route.path
        result = run_wrk(
            url, context.bodies[route.bodies], connections, plan.duration, plan, context.lua
        )
        point = {"subject": subject.key, "scenario": scenario, "connections": connections}
        points.append({**point, "round": round_index, **result})
        print(f"  {subject.key:8} {scenario:6} c={connections:<3} {describe(result)}", flush=True)
    return points


def describe(result: dict) -> str:
    return (
        f"{result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}"
    )


# ---------------------------------------------------------------------------- predictions


def predictions_of(subject: Subject, running: dict[str, Running], records: Records) -> list | None:
    """The subject's answers for the check records (None for the ceiling, which has no model)."""
    with httpx.Client(timeout=60) as client:
        if subject.key == "ours":
            url = running["ours"].url + "/models/abalone/predict"
            return post_json(client, url, records.rows)["predictions"]
        if subject.key == "mlflow":
            url = running["mlflow-abalone"].url + "/invocations"
            return post_json(client, url, {"dataframe_records": records.as_columns()})[
                "predictions"
            ]
        if subject.key == "fastapi":
            url = running["fastapi"].url + "/predict"
            return [post_json(client, url, row)["prediction"] for row in records.rows]
    return None


def post_json(client: httpx.Client, url: str, body: object) -> dict:
    response = client.post(url, json=body)
    if response.status_code != 200:
        raise ServerError(f"POST {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def compare_predictions(answers: dict[str, list]) -> dict:
    """Every subject against ours: np.allclose with rtol 1e-9 (and atol 0)."""
    reference = np.asarray(answers.get("ours", []), dtype=float)
    pairs = {}
    for key, values in answers.items():
        if key == "ours":
            continue
        other = np.asarray(values, dtype=float)
        same = other.shape == reference.shape and np.allclose(reference, other, rtol=1e-9, atol=0)
        gap = float(np.max(np.abs(reference - other))) if other.shape == reference.shape else None
        pairs[key] = {"equal": bool(same), "max_abs_difference": gap}
    count = len(reference)
    return {
        "records": count,
        "rtol": 1e-9,
        "pairs": pairs,
        "all_equal": bool(pairs) and all(pair["equal"] for pair in pairs.values()),
    }


# ---------------------------------------------------------------------------- the run


@dataclass
class Context:
    plan: Plan
    workspace: Workspace
    bodies: dict[str, Path]
    lua: Path
    check_records: Records
    points: list[dict] = field(default_factory=list)
    cold_starts: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, list] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def record_cold_starts(context: Context, running: dict[str, Running]) -> None:
    for name, server in running.items():
        context.cold_starts.setdefault(name, []).append(server.cold_start_s)


def run_subject(subject: Subject, context: Context, round_index: int) -> None:
    print(f"[round {round_index + 1}] {subject.title}", flush=True)
    try:
        with serving(subject, context.workspace) as running:
            record_cold_starts(context, running)
            if round_index == 0:
                answers = predictions_of(subject, running, context.check_records)
                if answers is not None:
                    context.answers[subject.key] = answers
            context.points += measure_subject(subject, running, context, round_index)
    except (ServerError, subprocess.TimeoutExpired, httpx.HTTPError) as exc:
        context.failures[subject.key] = str(exc)
        print(f"  {subject.key} FAILED: {exc}", flush=True)


def extra_cold_starts(subject: Subject, context: Context) -> None:
    """More starts of the subject's first server, until it has `plan.cold_starts` samples."""
    spec = subject.cold_server
    while len(context.cold_starts.get(spec.name, [])) < context.plan.cold_starts:
        server = start_server(spec, context.workspace)
        stop_server(server)
        context.cold_starts.setdefault(spec.name, []).append(server.cold_start_s)


def run_rounds(subjects: list[Subject], context: Context) -> None:
    for round_index in range(context.plan.rounds):
        shift = round_index % len(subjects)  # rotate the order, so no subject is always first
        for subject in subjects[shift:] + subjects[:shift]:
            if subject.key not in context.failures:
                run_subject(subject, context, round_index)
    for subject in subjects:
        if subject.key not in context.failures:
            try:
                extra_cold_starts(subject, context)
            except ServerError as exc:
                context.failures[subject.key] = str(exc)


# ---------------------------------------------------------------------------- summary


def median_points(points: list[dict]) -> dict[tuple[str, str, int], dict]:
    """Per (subject, scenario, connections): medians over rounds; errors summed over rounds."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for point in points:
        groups.setdefault((point["subject"], point["scenario"], point["connections"]), []).append(
            point
        )
    summary = {}
    for key, group in groups.items():
        summary[key] = {
            metric: statistics.median(point[metric] for point in group)
            for metric in ("rps", "p50_ms", "p99_ms")
        }
        summary[key]["errors"] = sum(point["errors"] for point in group)
        summary[key]["rounds"] = len(group)
    return summary


def ratio(summary: dict, ours: tuple, other: tuple) -> float | None:
    if ours not in summary or other not in summary or not summary[other]["rps"]:
        return None
    return summary[ours]["rps"] / summary[other]["rps"]


def evaluate_targets(summary: dict, context: Context, check: dict) -> list[dict]:
    at = f"at {context.plan.headline} connections"
    ours = ("ours", "single", context.plan.headline)
    fastapi = ratio(summary, ours, ("fastapi", "single", ours[2]))
    mlflow = ratio(summary, ours, ("mlflow", "single", ours[2]))
    ceiling = ratio(summary, ours, ("ceiling", "single", ours[2]))
    p99 = summary.get(ours, {}).get("p99_ms")
    ours_points = [point for point in context.points if point["subject"] == "ours"]
    errors = sum(point["errors"] for point in ours_points)
    return [
        target(
            f"ours >= {TARGET_PEER_RATIO:g}x FastAPI peer req/s {at}",
            fmt_ratio(fastapi),
            fastapi is not None and fastapi >= TARGET_PEER_RATIO,
        ),
        target(
            f"ours >= {TARGET_PEER_RATIO:g}x mlflow models serve req/s {at}",
            fmt_ratio(mlflow),
            mlflow is not None and mlflow >= TARGET_PEER_RATIO,
        ),
        target(
            f"ours >= {TARGET_CEILING_RATIO:g}x the ceiling's req/s {at}",
            fmt_ratio(ceiling),
            ceiling is not None and ceiling >= TARGET_CEILING_RATIO,
        ),
        target(
            f"ours p99 < {TARGET_P99_MS:g} ms {at}",
            f"{fmt_ms(p99)} ms",
            p99 is not None and p99 < TARGET_P99_MS,
        ),
        target(
            "ours: zero errors (all points, all rounds)",
            str(errors),
            bool(ours_points) and errors == 0,
        ),
        target(
            f"identical predictions (rtol {check['rtol']:g})",
            "equal" if check["all_equal"] else "DIFFERENT",
            check["all_equal"],
        ),
    ]


def target(name: str, measured: str, met: bool) -> dict:
    return {"target": name, "measured": measured, "met": met}


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# ---------------------------------------------------------------------------- report


def load_table(
    summary: dict, subjects: list[Subject], scenario: str, connections: list[int]
) -> list[str]:
    lines = [
        "| connections | subject | req/s | p50 ms | p99 ms | errors | ours ÷ subject |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for count in connections:
        for subject in subjects:
            row = summary.get((subject.key, scenario, count))
            if row is None:
                continue
            factor = ratio(summary, ("ours", scenario, count), (subject.key, scenario, count))
            lines.append(
                f"| {count} | {subject.title} | {fmt_rps(row['rps'])} | {fmt_ms(row['p50_ms'])} | "
                f"{fmt_ms(row['p99_ms'])} | {row['errors']} | {fmt_ratio(factor)} |"
            )
    return lines


def list_table(summary: dict, subjects: list[Subject], plan: Plan) -> list[str]:
    lines = [
        "| subject | requests/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for subject in subjects:
        row = summary.get((subject.key, "list", plan.list_connections))
        if row is None:
            reason = subject.note or "not measured (no model)"
            lines.append(f"| {subject.title} | n/a | n/a | n/a | n/a | {reason} |")
            continue
        rows = row["rps"] * plan.list_rows
        lines.append(
            f"| {subject.title} | {fmt_rps(row['rps'])} | {rows:,.0f} | {fmt_ms(row['p50_ms'])} | "
            f"{fmt_ms(row['p99_ms'])} | {row['errors']} |"
        )
    return lines


def cold_start_table(context: Context, subjects: list[Subject]) -> list[str]:
    lines = ["| subject | ready check | median s | samples (s) |", "|---|---|---:|---|"]
    for subject in subjects:
        spec = subject.cold_server
        samples = context.cold_starts.get(spec.name, [])
        if not samples:
            continue
        shown = ", ".join(f"{value:.2f}" for value in samples)
        median = statistics.median(samples)
        lines.append(f"| {subject.title} | GET {spec.ready_path} | {median:.2f} | {shown} |")
    return lines


def check_lines(check: dict, subjects: list[Subject]) -> list[str]:
    titles = {subject.key: subject.title for subject in subjects}
    lines = []
    for key, pair in check["pairs"].items():
        verdict = "equal" if pair["equal"] else "DIFFERENT"
        gap = "n/a" if pair["max_abs_difference"] is None else f"{pair['max_abs_difference']:g}"
        lines.append(
            f"- ours vs {titles.get(key, key)}: {verdict} on {check['records']} abalone records "
            f"(np.allclose, rtol {check['rtol']:g}, atol 0; max abs difference {gap})"
        )
    return lines or ["- not run"]


def target_table(targets: list[dict]) -> list[str]:
    lines = ["| target | measured | met |", "|---|---:|---|"]
    for item in targets:
        lines.append(
            f"| {item['target']} | {item['measured']} | {'yes' if item['met'] else 'NO'} |"
        )
    return lines


def report_lines(
    context: Context, subjects: list[Subject], summary: dict, check: dict, targets: list[dict]
) -> list[str]:
    plan = context.plan
    lines = [f"### Abalone, one record per request (median of {plan.rounds} round(s))", ""]
    lines += load_table(summary, subjects, "single", list(plan.connections))
    lines += [
        "",
        f"### Abalone, lists of {plan.list_rows:,} records ({plan.list_connections} connections)",
        "",
    ]
    lines += list_table(summary, subjects, plan)
    if "iris" in plan.datasets:
        lines += [
            "",
            f"### Iris classifier, one record per request ({plan.iris_connections} connections)",
            "",
        ]
        lines += load_table(summary, subjects, "iris", [plan.iris_connections])
    lines += ["", "### Cold start: process start to the first 200 from the ready check", ""]
    lines += cold_start_table(context, subjects)
    lines += ["", "### Identical predictions", ""] + check_lines(check, subjects)
    lines += ["", "### Targets", ""] + target_table(targets)
    if context.failures:
        lines += ["", "### Failures", ""]
        lines += [f"- {key}: {reason.splitlines()[0]}" for key, reason in context.failures.items()]
    return lines


# ---------------------------------------------------------------------------- machine and docs


def machine_description(load_before: str) -> dict:
    return {**machine_facts(PACKAGES), "wrk": wrk_version(), "load_average_before": load_before}


def wrk_version() -> str:
    completed = subprocess.run([str(WRK), "-v"], capture_output=True, text=True)
    first = (completed.stdout or completed.stderr or "wrk ?").splitlines()[0]
    return first.split(" Copyright")[0]


def docs_section(results: dict, lines: list[str]) -> str:
    machine, plan = results["machine"], results["plan"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    reduced = "" if plan["duration"] >= 15 else " (not 15 s: that takes the run past 20 minutes)"
    intro = [
        "Our prediction server (`mlops serve`, one worker) side by side with a typical FastAPI "
        "server (pydantic request model -> one-row DataFrame -> `pipeline.predict`, uvicorn, one "
        "worker; `bench/peers/fastapi_server.py`), `mlflow models serve` (`--env-manager local`, "
        "one worker, `/invocations` with `dataframe_records`) and a ceiling: the same Litestar + "
        "uvicorn stack on a route that parses the JSON body and answers a constant without a model "
        "(`bench/peers/ceiling_server.py`). All serve the same abalone champion (a scikit-learn "
        f"pipeline, `{results['abalone_model']}`) built by `mlops build` into a temporary folder.",
        "",
        "Reproduce: `uv run python -m bench.serving` (see `bench/README.md`). Raw results: "
        f"`bench/results/{results['results_file']}` (git-ignored).",
        "",
        f"- Machine: {machine['nproc']} CPUs (`nproc`), {machine['cpu']}, {machine['ram_gib']} GiB "
        f"RAM, Linux {machine['kernel']}; load average before the run "
        f"{machine['load_average_before']}.",
        f"- Software: Python {machine['python']}, {packages}; {machine['wrk']}.",
        f"- Date: {machine['date']}.",
        f"- Load: wrk with one thread on the same machine (it shares the {machine['nproc']} cores "
        f"with the server), a Lua script cycling POST bodies of real abalone records, "
        f"{plan['duration']} s per point{reduced}, {plan['warmup']} s warm-up per route, "
        f"{plan['rounds']} round(s) with the subject order rotated; the tables show medians over "
        "rounds, errors summed over rounds (non-2xx answers plus socket errors and timeouts, "
        f"wrk timeout {plan['wrk_timeout']} s). wrk is closed-loop: latencies are those of the "
        "requests it sent, at the rate each server sustained.",
        f"- Ratios are ours ÷ subject in requests/s; targets are evaluated at {plan['headline']} "
        "connections.",
        "- Access logs: ours writes its JSON line per request (its normal behaviour); the FastAPI "
        "peer and the ceiling run with `--no-access-log`; `mlflow models serve` runs as it ships "
        "(uvicorn access log on).",
        "",
    ]
    return "\n".join(intro + lines) + "\n"


def write_results(results: dict, stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"serving-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CI: 8 connections, 2 s, 1 round, abalone only"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--duration", type=int, help=f"seconds per point (default {FULL_DURATION}; smoke 2)"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 3; smoke 1)")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="development: a folder a previous run built in (its data/ is reused, no build)",
    )
    return parser.parse_args(argv)


def prepare(plan: Plan, workspace: Workspace, build: bool) -> tuple[Context, list[Subject], dict]:
    source, source_kind = abalone_source(workspace)
    build_seconds = 0.0
    if build:
        print(f"building {', '.join(plan.datasets)} from {source} ({source_kind}) ...", flush=True)
        build_seconds = build_champions(workspace, plan.datasets, source)
        print(f"built in {build_seconds:.0f} s", flush=True)
    bodies, check_records = make_bodies(workspace, plan, source)
    lua = workspace.root / "post.lua"
    lua.write_text(WRK_SCRIPT)
    subjects = make_subjects(plan, copy_peer_models(workspace, plan.datasets))
    manifest = read_manifest(workspace, "abalone")[0]
    info = {
        "abalone_source": f"{source} ({source_kind})",
        "abalone_model": f"{manifest['family']}, registry version {manifest['version']}",
        "build_seconds": round(build_seconds, 1),
    }
    return Context(plan, workspace, bodies, lua, check_records), subjects, info


def collect(
    context: Context, subjects: list[Subject], info: dict, machine: dict, stamp: str
) -> tuple[dict, list[str]]:
    summary = median_points(context.points)
    check = compare_predictions(context.answers)
    targets = evaluate_targets(summary, context, check)
    results = {
        "machine": machine,
        "plan": {key: getattr(context.plan, key) for key in context.plan.__dataclass_fields__},
        **info,
        "results_file": f"serving-{stamp}.json",
        "subjects": {s.key: {"title": s.title, "note": s.note} for s in subjects},
        "points": context.points,
        "medians": [
            {"subject": k[0], "scenario": k[1], "connections": k[2], **v}
            for k, v in summary.items()
        ],
        "cold_starts_s": context.cold_starts,
        "identical_predictions": check,
        "targets": targets,
        "failures": context.failures,
    }
    return results, report_lines(context, subjects, summary, check, targets)


@contextmanager
def workspace_folder(reuse: Path | None) -> Iterator[Path]:
    """A fresh temporary folder (removed afterwards), or the one given with --reuse."""
    if reuse is not None:
        yield reuse.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        yield Path(folder)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the servers are stopped on the way out."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not WRK.is_file():
        print(f"{WRK} is absent: install wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    stop_on_sigterm()
    plan = make_plan(args)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"plan: {plan}\nestimated {estimated_seconds(plan) / 60:.0f} min; load average "
        f"{' '.join(load_before)}",
        flush=True,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with workspace_folder(args.reuse) as folder:
        context, subjects, info = prepare(plan, Workspace(folder), build=args.reuse is None)
        run_rounds(subjects, context)
    machine = machine_description(" ".join(load_before))
    results, lines = collect(context, subjects, info, machine, stamp)
    print("\n" + "\n".join(lines), flush=True)
    print(f"\nresults: {write_results(results, stamp)}")
    if not args.no_docs:
        write_section(DOCS_FILE, DOCS_TITLE, docs_section(results, lines))
        print(f"docs: {DOCS_FILE} (## {DOCS_TITLE})")
    ok = not context.failures and results["identical_predictions"]["all_equal"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
