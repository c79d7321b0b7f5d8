"""Pipeline benchmark: empty data folder and instance -> served champion, per data set and size.

    uv run python -m bench.pipeline            # iris, diabetes, abalone x1, x10, x100; docs block
    uv run python -m bench.pipeline --smoke    # iris only, for CI

Each case starts from empty folders: `mlops build <ds>` in a fresh process (Python and Dagster
start-up included), then `mlops serve` until the first 200 from /models/<ds>/predict. Step times
come from the Dagster run's own step statistics, so the cost of each asset is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import (
    DATA_PACKAGES,
    DOCS_FILE,
    SHARED_ABALONE,
    facts_block,
    machine_facts,
    write_block,
    write_results,
)

PROJECT = Path(__file__).resolve().parents[1]
REQUESTS = {
    "iris": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    "diabetes": {"age": 50, "sex": 1, "bmi": 25.0, "bp": 90.0, "s1": 180.0, "s2": 100.0,
                 "s3": 50.0, "s4": 4.0, "s5": 4.5, "s6": 90.0},
    "abalone": {"Sex": "M", "Length": 0.455, "Diameter": 0.365, "Height": 0.095,
                "Whole_weight": 0.514, "Shucked_weight": 0.2245, "Viscera_weight": 0.101,
                "Shell_weight": 0.15},
}  # fmt: skip


def scaled_abalone(folder: Path, factor: int) -> Path:
    """The abalone file repeated `factor` times with a little noise, so rows are not duplicates."""
    frame = pd.read_csv(SHARED_ABALONE)
    rng = np.random.default_rng(factor)
    copies = pd.concat([frame] * factor, ignore_index=True)
    numeric = copies.columns[1:-1]
    noise = rng.normal(1, 0.01, (len(copies), len(numeric)))
    copies[numeric] = (copies[numeric] * noise).round(4).clip(upper=copies[numeric].max(), axis=1)
    path = folder / f"abalone_x{factor}.csv"
    copies.to_csv(path, index=False)
    return path


def environment(folder: Path, source: Path | None) -> dict:
    home = folder / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    env = {**os.environ, "MLOPS_DATA_DIR": str(folder / "data"), "DAGSTER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    if source is not None:
        env["MLOPS_SOURCE_ABALONE"] = str(source)
    return env


def step_seconds(env: dict) -> dict[str, float]:
    """Seconds per asset step of the latest run in the instance at DAGSTER_HOME."""
    code = (
        "import json; from dagster import DagsterInstance\n"
        "with DagsterInstance.get() as i:\n"
        "    run = i.get_runs(limit=1)[0]\n"
        "    stats = i.get_run_step_stats(run.run_id)\n"
        "    print(json.dumps({s.step_key.split('__')[-1]: s.end_time - s.start_time "
        "for s in stats if s.end_time}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def first_prediction(dataset: str, env: dict) -> float:
    """Seconds from starting `mlops serve` to the first 200 from /models/<ds>/predict."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    body = json.dumps(REQUESTS[dataset]).encode()
    url = f"http://127.0.0.1:{port}/models/{dataset}/predict"
    try:
        while time.perf_counter() - started < 120:
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{dataset}: no prediction within 120 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_case(dataset: str, label: str, source: Path | None, folder: Path) -> dict:
    env = environment(folder, source)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", "build", dataset],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
    )
    build = time.perf_counter() - started
    steps = step_seconds(env)
    serve = first_prediction(dataset, env)
    row = {"case": label, "build_s": build, "serve_s": serve, "total_s": build + serve, **steps}
    print(json.dumps(row), flush=True)
    return row


def cases(smoke: bool, folder: Path) -> list[tuple[str, str, Path | None]]:
    if smoke:
        return [("iris", "iris (150 rows)", None)]
    chosen = [("iris", "iris (150 rows)", None), ("diabetes", "diabetes (442 rows)", None)]
    if SHARED_ABALONE.is_file():
        for factor in (1, 10, 100):
            rows = 4177 * factor
            chosen.append(("abalone", f"abalone x{factor} ({rows:,} rows)",
                           scaled_abalone(folder, factor)))  # fmt: skip
    return chosen


def markdown(rows: list[dict]) -> str:
    steps = ["raw", "validated", "features", "candidates", "champion_model"]
    lines = [
        "| case | `mlops build` (s) | of which " + " / ".join(steps) + " (s) | other: start-up,"
        " Dagster, MLflow set-up (s) | server start to first prediction (s) | total (s) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        parts = [row.get(step, 0.0) for step in steps]
        other = row["build_s"] - sum(parts)
        lines.append(
            f"| {row['case']} | {row['build_s']:.1f} | "
            + " / ".join(f"{part:.1f}" for part in parts)
            + f" | {other:.1f} | {row['serve_s']:.1f} | {row['total_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="iris only")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        chosen = cases(args.smoke, Path(scratch))
        for index, (dataset, label, source) in enumerate(chosen):
            folder = Path(scratch) / f"case{index}"
            folder.mkdir()
            rows.append(run_case(dataset, label, source, folder))
    results = {
        "machine": machine_facts(DATA_PACKAGES),
        "plan": {"cases": [label for _, label, _ in chosen], "rounds": 1},
        "rows": rows,
    }
    print(f"results: {write_results('pipeline', results)}")
    table = markdown(rows)
    print("\n" + table)
    if not args.no_docs:
        write_block("pipeline", facts_block("bench.pipeline", results) + "\n\n" + table)
        print(f"docs: {DOCS_FILE} (pipeline results block)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
