"""The command line, `python -m bench.serving`: plan, build, measure, report; the results file and
the docs section."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import bench.serving
from bench.report import machine_facts, write_section
from bench.serving.bodies import make_bodies
from bench.serving.markdown import docs_section, report_lines
from bench.serving.plan import FULL_DURATION, Plan, estimated_seconds, make_plan
from bench.serving.predictions import compare_predictions
from bench.serving.rounds import Context, run_rounds
from bench.serving.servers import stop_on_sigterm
from bench.serving.subjects import Subject, make_subjects
from bench.serving.summary import evaluate_targets, median_points
from bench.serving.workspace import (
    REPO,
    Workspace,
    abalone_source,
    build_champions,
    copy_peer_models,
    read_manifest,
    workspace_folder,
)
from bench.serving.wrk import WRK, write_script, wrk_version

RESULTS_DIR = REPO / "bench" / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_TITLE = "Serving"
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving", description=bench.serving.__doc__.split("\n")[0]
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
    lua = write_script(workspace.root)
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


def machine_description(load_before: str) -> dict:
    return {**machine_facts(PACKAGES), "wrk": wrk_version(), "load_average_before": load_before}


def write_results(results: dict, stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"serving-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


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
