"""One prediction server holding many champions: what 60 cost beside 3, measured in one run.

    uv run python -m bench.many_models                     # 3 and 60 champions; docs block
    uv run python -m bench.many_models --smoke --no-docs   # 2 and 4 champions, short (CI)

Iris is built once (`mlops build iris` in a temporary workspace); its bundle is then written
again through `mlops_contract.bundle.write_bundle` as `iris_001`, `iris_002`, ..., so each is a
complete, checksummed bundle as the pipeline writes it. Every champion is a real iris model: what
grows is the number of models, which is what the server's own cost depends on (one slot, one
reload check, one set of metric series per model), not the size of each model.

Per size, a fresh `mlops serve` (one worker) over a models folder holding exactly that many:

- cold start: seconds from process start to the first 200 from `/ready`;
- memory: resident set of the server's process group after the load;
- reload tick: CPU of the idle server over `--idle` seconds, no requests (the reload loop checks
  every model each second, and re-verifies every bundle's files every minute), per tick;
- `/metrics`: bytes and lines after requests to every model;
- load: wrk, 32 connections, every request to one model, then requests spread evenly over every
  model's `/predict` (the micro-batcher groups requests of one model only, so spreading the same
  traffic over more models leaves it fewer rows per batch).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import httpx

from bench.idle_cost import cpu_seconds, family
from bench.report import DOCS_FILE, facts_block, machine_facts, write_block, write_results
from bench.serving.load import dumps, iris_records, run_wrk, write_script
from bench.serving.servers import (
    VENV_BIN,
    ServerSpec,
    Workspace,
    abalone_source,
    build_champions,
    read_manifest,
    start_server,
    stop_server,
    workspace_folder,
)
from mlops_contract.bundle import MANIFEST_FILE, MODEL_FILE, POINTER_FILE, load_bundle, write_bundle

PACKAGES = ["litestar", "uvicorn", "scikit-learn", "prometheus-client"]
CONNECTIONS = 32


def model_names(count: int) -> list[str]:
    return [f"iris_{index:03d}" for index in range(1, count + 1)]


def clone_champions(source_dir: Path, models_dir: Path, names: list[str]) -> None:
    """`source_dir`'s current bundle written again, under each name, as a complete bundle."""
    bundle = load_bundle(source_dir)
    extra = {
        path.name: path.read_bytes()
        for path in bundle.path.iterdir()
        if path.name not in (MODEL_FILE, MANIFEST_FILE)
    }
    manifest = {k: v for k, v in bundle.manifest.items() if k not in ("format", "files")}
    for name in names:
        write_bundle(models_dir / name, bundle.path.name, bundle.model, {**manifest, "name": name},
                     extra_files=extra)  # fmt: skip


def serving_workspace(root: Path, source: Workspace, count: int) -> Workspace:
    """A workspace whose models folder holds `count` iris champions and nothing else."""
    workspace = Workspace(root / f"models-{count}")
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.models_dir.mkdir(parents=True)
    clone_champions(source.models_dir / "iris", workspace.models_dir, model_names(count))
    return workspace


def group_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(member) or 0.0 for member in family(pid))


def group_rss_mib(pid: int) -> float:
    kib = 0
    for member in set(family(pid)):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        kib += next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmRSS:")), 0)  # fmt: skip
    return kib / 1024


def write_requests(folder: Path, names: list[str], rows: list[dict]) -> Path:
    """Every model's path with each row, interleaved model by model (`<path> <body>` lines for
    bench.serving's wrk script)."""
    lines = [f"/models/{name}/predict {dumps(row)}" for row in rows for name in names]
    path = folder / f"requests-{len(names)}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def touch_every_model(url: str, names: list[str], row: dict) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for name in names:
            answer = client.post(f"/models/{name}/predict", json=row)
            answer.raise_for_status()


def measure_size(workspace: Workspace, count: int, rows: list[dict], args) -> dict:
    serve = ServerSpec("ours", (str(VENV_BIN / "mlops"), "serve", "--port", "{port}"), "/ready")
    names = model_names(count)
    server = start_server(serve, workspace)
    try:
        models = httpx.get(f"{server.url}/models", timeout=30).json()
        served = sum(1 for model in models if model.get("version") is not None)
        touch_every_model(server.url, names, rows[0])
        before = group_cpu_seconds(server.process.pid)
        time.sleep(args.idle)
        idle_cpu = group_cpu_seconds(server.process.pid) - before
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        lua = write_script(workspace.root)
        one, spread = (
            run_wrk(
                server.url,
                write_requests(workspace.root, group, rows),
                CONNECTIONS,
                args.seconds,
                lua,
                threads=2,
            )  # fmt: skip
            for group in (names[:1], names)
        )
        rss = group_rss_mib(server.process.pid)
    finally:
        stop_server(server)
    return {
        "champions": count,
        "served": served,
        "cold_start_s": round(server.cold_start_s, 2),
        "rss_mib": round(rss, 1),
        "idle_cpu_ms_per_tick": round(1000 * idle_cpu / args.idle, 2),
        "metrics_bytes": len(metrics.encode()),
        "metrics_lines": sum(1 for line in metrics.splitlines() if line and line[0] != "#"),
        "errors": one["errors"] + spread["errors"],
        **{f"one_{key}": value for key, value in one.items()},
        **{f"spread_{key}": value for key, value in spread.items()},
    }


ROWS = [
    ("champions served", "served", "{:d}"),
    ("cold start, s", "cold_start_s", "{:.2f}"),
    ("memory (RSS of the server), MiB", "rss_mib", "{:.1f}"),
    ("reload tick, CPU ms per 1 s tick (idle)", "idle_cpu_ms_per_tick", "{:.2f}"),
    ("`/metrics` size, bytes", "metrics_bytes", "{:,d}"),
    ("`/metrics` samples (lines)", "metrics_lines", "{:,d}"),
    ("all requests to one model: req/s", "one_rps", "{:,.0f}"),
    ("all requests to one model: p99, ms", "one_p99_ms", "{:.2f}"),
    ("requests spread over every model: req/s", "spread_rps", "{:,.0f}"),
    ("requests spread over every model: p99, ms", "spread_p99_ms", "{:.2f}"),
    ("errors (both loads)", "errors", "{:d}"),
]


def markdown(small: dict, large: dict) -> str:
    head = f"| | {small['champions']} champions | {large['champions']} champions | ratio |"
    lines = [head, "|---|---:|---:|---:|"]
    for label, key, form in ROWS:
        ratio = f"{large[key] / small[key]:.2f}x" if small[key] else "-"
        lines.append(
            f"| {label} | {form.format(small[key])} | {form.format(large[key])} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(3, 60))
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per size")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window per size, s")
    parser.add_argument("--smoke", action="store_true", help="2 and 4 champions, 2 s, 3 s idle")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--reuse", type=Path, help="a workspace folder from an earlier run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.seconds, args.idle = (2, 4), 2, 3.0
    with workspace_folder(args.reuse) as root:
        build = Workspace(root / "build")
        build.root.mkdir(parents=True, exist_ok=True)
        if not (build.models_dir / "iris" / POINTER_FILE).is_file():
            print("building the iris champion ...", flush=True)
            build_champions(build, ("iris",), abalone_source(build)[0])
        rows = iris_records(read_manifest(build, "iris")[0]).rows
        sizes = [measure_size(serving_workspace(root, build, n), n, rows, args) for n in args.sizes]
    results = {
        "machine": machine_facts(PACKAGES),
        "plan": {
            "sizes": list(args.sizes),
            "wrk_seconds": args.seconds,
            "idle_s": args.idle,
            "connections": 32,
        },  # fmt: skip
        "sizes": sizes,
    }
    table = markdown(*sizes)
    print(table)
    if not args.no_docs:
        write_results("many-models", results)
        write_block("many-models", f"{facts_block('bench.many_models', results)}\n\n{table}")
        print(f"results written to {DOCS_FILE.relative_to(Path.cwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
