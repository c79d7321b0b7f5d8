"""The numbers a run reports: medians over rounds, ours ÷ subject ratios, the targets (reported
as met or not, never enforced), and how each number is written."""

from __future__ import annotations

import statistics

from bench.serving.predictions import verdict
from bench.serving.rounds import Context

TARGET_PEER_RATIO = 30.0
TARGET_CEILING_RATIO = 0.5
TARGET_P99_MS = 50.0


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
    p99 = summary.get(ours, {}).get("p99_ms")
    ours_points = [point for point in context.points if point["subject"] == "ours"]
    errors = sum(point["errors"] for point in ours_points)
    others = (
        ("fastapi", "FastAPI peer", TARGET_PEER_RATIO),
        ("mlflow", "mlflow models serve", TARGET_PEER_RATIO),
        ("ceiling", "the ceiling's", TARGET_CEILING_RATIO),
    )
    ratios = []
    for key, label, minimum in others:
        value = ratio(summary, ours, (key, "single", ours[2]))
        ratios.append(
            target(
                f"ours >= {minimum:g}x {label} req/s {at}",
                fmt_ratio(value),
                value is not None and value >= minimum,
            )
        )
    return [
        *ratios,
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
            verdict(check["all_equal"]),
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
