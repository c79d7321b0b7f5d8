"""What a run reports: medians over rounds, ours ÷ subject ratios, the targets (reported as met or
not, never enforced), the printed tables (also the docs results block) and the JSON results."""

from __future__ import annotations

import statistics

from bench.serving.load import Context, Plan, compare_predictions, verdict
from bench.serving.servers import Subject

TARGET_PEER_RATIO = 30.0
TARGET_CEILING_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_SHADOW_LOSS = 0.10  # throughput shadow scoring of every request may cost


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
    ours_points = [p for p in context.points if p["subject"] in ("ours", "ours_shadow", "ours_w2")]
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
    two_workers = ratio(summary, ("ours_w2", "single", ours[2]), ("ceiling", "single", ours[2]))
    if two_workers is not None:  # reported apart: it uses both cores for the server
        ratios.append(
            target(
                f"(apart) ours with 2 workers, wrk pinned, >= {TARGET_CEILING_RATIO:g}x "
                f"the 1-worker ceiling's req/s {at}",
                fmt_ratio(two_workers),
                two_workers >= TARGET_CEILING_RATIO,
            )
        )
    return [
        *ratios,
        *shadow_targets(summary, ours, at),
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


def shadow_targets(summary: dict, ours: tuple, at: str) -> list[dict]:
    """Shadow scoring of every request against none, in the same run: the throughput kept (the
    p99 of both is in the load table, side by side)."""
    kept = ratio(summary, ("ours_shadow", *ours[1:]), ours)
    if kept is None:
        return []
    return [
        target(
            f"shadow on 100% of requests keeps >= {1 - TARGET_SHADOW_LOSS:g}x ours' req/s {at}",
            fmt_ratio(kept),
            kept >= 1 - TARGET_SHADOW_LOSS,
        )
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


def latency_cells(row: dict) -> str:
    """`p50 | p99 | errors` of a summary row."""
    return f"{fmt_ms(row['p50_ms'])} | {fmt_ms(row['p99_ms'])} | {row['errors']}"


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
                f"| {count} | {subject.title} | {fmt_rps(row['rps'])} | {latency_cells(row)} | "
                f"{fmt_ratio(factor)} |"
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
            f"| {subject.title} | {fmt_rps(row['rps'])} | {rows:,.0f} | {latency_cells(row)} |"
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
    """Ours against each subject on the same abalone records (np.allclose, atol 0)."""
    titles = {subject.key: subject.title for subject in subjects}
    lines = [
        "| ours vs | records | rtol | max abs difference | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for key, pair in check["pairs"].items():
        gap = "n/a" if pair["max_abs_difference"] is None else f"{pair['max_abs_difference']:g}"
        lines.append(
            f"| {titles.get(key, key)} | {check['records']} | {check['rtol']:g} | {gap} | "
            f"{verdict(pair['equal'])} |"
        )
    return lines if check["pairs"] else ["not run"]


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
    """The `### ...` sections with their tables, as printed and as written to the docs."""
    plan = context.plan
    sections = [
        (
            f"Abalone, one record per request (median of {plan.rounds} round(s))",
            load_table(summary, subjects, "single", list(plan.connections)),
        ),
        (
            f"Abalone, lists of {plan.list_rows:,} records ({plan.list_connections} connections)",
            list_table(summary, subjects, plan),
        ),
    ]
    if "iris" in plan.datasets:
        sections.append(
            (
                f"Iris classifier, one record per request ({plan.iris_connections} connections)",
                load_table(summary, subjects, "iris", [plan.iris_connections]),
            )
        )
    sections += [
        (
            "Cold start: process start to the first 200 from the ready check",
            cold_start_table(context, subjects),
        ),
        ("Identical predictions", check_lines(check, subjects)),
        ("Targets", target_table(targets)),
    ]
    if context.failures:
        failures = [
            f"- {key}: {reason.splitlines()[0]}" for key, reason in context.failures.items()
        ]
        sections.append(("Failures", failures))
    lines = []
    for title, body in sections:
        lines += ["", f"### {title}", "", *body]
    return lines[1:]


def collect(
    context: Context, subjects: list[Subject], info: dict, machine: dict
) -> tuple[dict, list[str]]:
    """The results dict (written as JSON) and the printed table lines."""
    summary = median_points(context.points)
    check = compare_predictions(context.answers)
    targets = evaluate_targets(summary, context, check)
    results = {
        "machine": machine,
        "plan": {key: getattr(context.plan, key) for key in context.plan.__dataclass_fields__},
        **info,
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
