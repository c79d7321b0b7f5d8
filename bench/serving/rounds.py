"""The measurement: rounds over all subjects (order rotated), each started, checked for identical
predictions in round one, loaded with wrk at every point; then the remaining cold starts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.serving.bodies import Records
from bench.serving.plan import Plan
from bench.serving.predictions import predictions_of
from bench.serving.servers import Running, ServerError, cold_start, route_url, serving
from bench.serving.subjects import Route, Subject
from bench.serving.workspace import Workspace
from bench.serving.wrk import describe, run_wrk


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
    points = [("single", connections) for connections in plan.connections]
    if "list" in subject.routes:
        points.append(("list", plan.list_connections))
    if "iris" in subject.routes:
        points.append(("iris", plan.iris_connections))
    return points


def load_route(
    route: Route, running: dict[str, Running], context: Context, connections: int, seconds: int
) -> dict:
    """One wrk run against the route, posting its bodies."""
    url = route_url(running, route)
    bodies = context.bodies[route.bodies]
    return run_wrk(url, bodies, connections, seconds, context.plan, context.lua)


def measure_subject(
    subject: Subject, running: dict[str, Running], context: Context, round_index: int
) -> list[dict]:
    plan = context.plan
    for route in subject.routes.values():  # warm-up, not recorded
        load_route(route, running, context, 8, plan.warmup)
    points = []
    for scenario, connections in scenario_points(subject, plan):
        result = load_route(subject.routes[scenario], running, context, connections, plan.duration)
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
