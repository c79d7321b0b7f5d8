"""Serving benchmark: our server side by side with a typical FastAPI peer, `mlflow models serve`
and a no-model Litestar ceiling, all serving the same abalone champion, loaded with wrk.

    uv run python -m bench.serving          # full run; replaces its block of docs/benchmarks.md
    uv run python -m bench.serving --smoke  # CI: 8 connections, 2 s, 1 round, abalone only

Everything runs on loopback inside a temporary folder (its own data dir, MLflow store and Dagster
instance); every process started here is stopped here. See bench/README.md. Modules: `servers`
(workspace, subjects, server processes), `load` (plan, bodies, wrk, identical predictions,
rounds), `results` (medians, targets, tables, the results dict).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import DOCS_FILE, facts_block, machine_facts, write_block, write_results
from bench.serving.load import (
    FULL_DURATION,
    WRK,
    Context,
    Plan,
    estimated_seconds,
    make_bodies,
    make_plan,
    run_rounds,
    write_script,
    wrk_version,
)
from bench.serving.results import collect
from bench.serving.servers import (
    Subject,
    Workspace,
    abalone_source,
    build_champions,
    copy_peer_models,
    make_subjects,
    publish_challenger,
    read_manifest,
    select_subjects,
    shadow_rows,
    stop_on_sigterm,
    workspace_folder,
)

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
        "--subjects",
        help="development: comma-separated subject keys to run (ours, fastapi, mlflow, ceiling, "
        "ours_w2); default all",
    )
    parser.add_argument(
        "--connections",
        type=lambda text: [int(part) for part in text.split(",")],
        help="development: comma-separated connection counts of the one-record points",
    )
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
    peer_models = copy_peer_models(workspace, plan.datasets)
    subjects = select_subjects(make_subjects("iris" in plan.datasets, peer_models), plan.subjects)
    manifest = read_manifest(workspace, "abalone")[0]
    shadow_version = publish_challenger(workspace)
    info = {
        "abalone_source": f"{source} ({source_kind})",
        "abalone_model": f"{manifest['family']}, registry version {manifest['version']}",
        "build_seconds": round(build_seconds, 1),
        "shadow_challenger_version": shadow_version,
    }
    return Context(plan, workspace, bodies, lua, check_records), subjects, info


def docs_block(results: dict, lines: list[str]) -> str:
    machine = results["machine"]
    extra = {
        "Load generator": machine["wrk"],
        "Load average before the run": machine["load_average_before"],
        "Abalone champion": f"{results['abalone_model']}, built from {results['abalone_source']}",
        "Shadow": f"challenger v{results['shadow_challenger_version']} (the champion's model "
        f"again), {results['shadow_rows_logged']:,} rows logged in the shadow during the run",
    }
    return facts_block("bench.serving", results, extra) + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not WRK.is_file():
        print(f"{WRK} is absent: install wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    stop_on_sigterm()
    plan = make_plan(args)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"plan: {plan}\nestimated {estimated_seconds(plan) / 60:.0f} min; load average "
        f"{load_before}",
        flush=True,
    )
    with workspace_folder(args.reuse) as folder:
        context, subjects, info = prepare(plan, Workspace(folder), build=args.reuse is None)
        run_rounds(subjects, context)
        info["shadow_rows_logged"] = shadow_rows(context.workspace)
    machine = {**machine_facts(PACKAGES), "wrk": wrk_version(), "load_average_before": load_before}
    results, lines = collect(context, subjects, info, machine)
    path = write_results("serving", results)
    print("\n" + "\n".join(lines), flush=True)
    print(f"\nresults: {path}")
    if not args.no_docs:
        write_block("serving", docs_block(results, lines))
        print(f"docs: {DOCS_FILE} (serving results block)")
    ok = not context.failures and results["identical_predictions"]["all_equal"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
