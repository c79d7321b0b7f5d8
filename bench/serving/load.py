"""The load and what it measures: the plan (connections, duration, rounds, datasets), the request
bodies wrk posts, the wrk runs (a Lua script cycling the bodies, its parsed summary), the check
that ours, mlflow serve and the FastAPI peer predict the same, and the rounds over all subjects
(order rotated), then the remaining cold starts."""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.serving.servers import (
    Route,
    Running,
    ServerError,
    Subject,
    Workspace,
    cold_start,
    read_abalone,
    read_manifest,
    route_url,
    serving,
)
from mlops_contract.record import manifest_fields

SMOKE_SUBJECTS = ("ours", "fastapi", "mlflow", "ceiling")  # not the 2-worker point
FULL_DURATION = 10  # 15 s per point takes the full run past 20 minutes on 2 cores


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
    subjects: tuple[str, ...] | None = None  # None: every subject


def make_plan(args: argparse.Namespace) -> Plan:
    subjects = tuple(args.subjects.split(",")) if args.subjects else None
    if args.smoke:
        subjects = subjects or SMOKE_SUBJECTS
        connections = tuple(args.connections or (8,))
        return Plan(
            True, connections, args.duration or 2, args.rounds or 1, 1, ("abalone",),
            8 if 8 in connections else connections[0], subjects=subjects,
        )  # fmt: skip
    duration, rounds = args.duration or FULL_DURATION, args.rounds or 3
    connections = tuple(args.connections or (1, 8, 32, 128))
    headline = 32 if 32 in connections else connections[0]
    return Plan(
        False, connections, duration, rounds, 3, ("abalone", "iris"), headline, subjects=subjects
    )


def estimated_seconds(plan: Plan) -> float:
    """Load, warm-ups and roughly 10 s per server start, per round; plus the build."""
    iris = "iris" in plan.datasets
    points = 4 * len(plan.connections) + 2 + 4 * iris
    routes, servers = 6 + 4 * iris, 4 + iris
    per_round = points * (plan.duration + 0.3) + routes * plan.warmup + 10 * servers
    return plan.rounds * per_round + 60


CHECK_RECORDS = 200


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
    columns = {rule.name: rule.column for rule in manifest_fields(manifest)}
    renamed = frame[list(columns.values())].set_axis(list(columns), axis=1)
    return Records(renamed.to_dict("records"), columns)


def abalone_records(source: Path, manifest: dict, count: int, seed: int) -> Records:
    frame = read_abalone(source)
    sample = frame.sample(n=count, random_state=seed, replace=count > len(frame))
    return api_records(sample, manifest)


def iris_records(manifest: dict) -> Records:
    from sklearn.datasets import load_iris

    data = load_iris().data
    columns = [rule.column for rule in manifest_fields(manifest)]
    return api_records(pd.DataFrame(data, columns=columns), manifest)


def mlflow_body(rows: list[dict]) -> dict:
    """The `/invocations` body of `mlflow models serve` for rows keyed by training column."""
    return {"dataframe_records": rows}


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
        "mlflow_records": [dumps(mlflow_body([row])) for row in single.as_columns()],
        "records_list": [dumps(batch.rows) for batch in lists],
        "mlflow_list": [dumps(mlflow_body(batch.as_columns())) for batch in lists],
    }
    if "iris" in plan.datasets:
        iris = iris_records(read_manifest(workspace, "iris")[0])
        bodies["iris"] = [dumps(row) for row in iris.rows]
        bodies["mlflow_iris"] = [dumps(mlflow_body([row])) for row in iris.as_columns()]
    return {kind: write_bodies(folder, kind, items) for kind, items in bodies.items()}, single


WRK = Path("/usr/bin/wrk")

WRK_SCRIPT = r"""
-- POST JSON bodies read from a file (one document a line, or `<path> <document>` to send it to
-- that path instead of the URL's), in turn; counts non-2xx answers.
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
    local path, body = line:match("^(/%S*) (.+)$")
    if path then
      table.insert(requests, wrk.format("POST", path, headers, body))
    elseif #line > 0 then
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


def write_script(folder: Path) -> Path:
    """The Lua script, as `post.lua` in the folder."""
    lua = folder / "post.lua"
    lua.write_text(WRK_SCRIPT)
    return lua


def run_wrk(
    url: str,
    bodies: Path,
    connections: int,
    seconds: int,
    lua: Path,
    threads: int = 1,
    timeout: int = 10,
    cpus: str | None = None,
) -> dict:
    threads = min(threads, connections)
    pinned = ["taskset", "-c", cpus] if cpus else []
    argv = [*pinned, str(WRK), f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += [f"--timeout={timeout}s", "-s", str(lua), url, "--", str(bodies)]
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


def describe(result: dict) -> str:
    return (
        f"{result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}"
    )


def wrk_version() -> str:
    completed = subprocess.run([str(WRK), "-v"], capture_output=True, text=True)
    first = (completed.stdout or completed.stderr or "wrk ?").splitlines()[0]
    return first.split(" Copyright")[0]


def predictions_of(subject: Subject, running: dict[str, Running], records: Records) -> list | None:
    """The subject's answers for the check records (None for the ceiling, which has no model)."""
    url = route_url(running, subject.routes["single"])
    with httpx.Client(timeout=60) as client:
        if subject.key in ("ours", "ours_shadow"):
            return post_json(client, url, records.rows)["predictions"]
        if subject.key == "mlflow":
            return post_json(client, url, mlflow_body(records.as_columns()))["predictions"]
        if subject.key == "fastapi":
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


def verdict(equal: bool) -> str:
    return "equal" if equal else "DIFFERENT"


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

    def record_cold_start(self, server: str, seconds: float) -> None:
        self.cold_starts.setdefault(server, []).append(seconds)


def scenario_points(subject: Subject, plan: Plan) -> list[tuple[str, int]]:
    """(scenario, connections) pairs the subject is measured at, in order."""
    allowed = subject.connections or plan.connections
    points = [("single", count) for count in plan.connections if count in allowed]
    if "list" in subject.routes:
        points.append(("list", plan.list_connections))
    if "iris" in subject.routes:
        points.append(("iris", plan.iris_connections))
    return points


def load_route(
    subject: Subject,
    route: Route,
    running: dict[str, Running],
    context: Context,
    connections: int,
    seconds: int,
) -> dict:
    """One wrk run against the route, posting its bodies."""
    url = route_url(running, route)
    bodies = context.bodies[route.bodies]
    plan, lua = context.plan, context.lua
    return run_wrk(url, bodies, connections, seconds, lua, plan.wrk_threads, plan.wrk_timeout,
                   subject.wrk_cpus)  # fmt: skip


def measure_subject(
    subject: Subject, running: dict[str, Running], context: Context, round_index: int
) -> list[dict]:
    plan = context.plan
    for route in subject.routes.values():  # warm-up, not recorded
        load_route(subject, route, running, context, 8, plan.warmup)
    points = []
    for scenario, connections in scenario_points(subject, plan):
        route = subject.routes[scenario]
        result = load_route(subject, route, running, context, connections, plan.duration)
        point = {"subject": subject.key, "scenario": scenario, "connections": connections}
        points.append({**point, "round": round_index, **result})
        print(f"  {subject.key:8} {scenario:6} c={connections:<3} {describe(result)}", flush=True)
    return points


def run_subject(subject: Subject, context: Context, round_index: int) -> None:
    print(f"[round {round_index + 1}] {subject.title}", flush=True)
    try:
        with serving(subject, context.workspace) as running:
            for name, server in running.items():
                context.record_cold_start(name, server.cold_start_s)
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
        context.record_cold_start(spec.name, cold_start(spec, context.workspace))


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
