"""The Markdown a run prints and writes: the result tables, and the docs/benchmarks.md section
(the setup in prose, then the tables)."""

from __future__ import annotations

import statistics

from bench.serving.plan import Plan
from bench.serving.predictions import verdict
from bench.serving.rounds import Context
from bench.serving.subjects import Subject
from bench.serving.summary import fmt_ms, fmt_ratio, fmt_rps, ratio


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
    titles = {subject.key: subject.title for subject in subjects}
    lines = []
    for key, pair in check["pairs"].items():
        gap = "n/a" if pair["max_abs_difference"] is None else f"{pair['max_abs_difference']:g}"
        lines.append(
            f"- ours vs {titles.get(key, key)}: {verdict(pair['equal'])} on {check['records']} "
            f"abalone records (np.allclose, rtol {check['rtol']:g}, atol 0; max abs difference "
            f"{gap})"
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
