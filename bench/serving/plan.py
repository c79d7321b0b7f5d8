"""What a serving benchmark run measures: connections, duration, rounds, datasets."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

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
