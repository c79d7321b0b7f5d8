"""Drift benchmark: ours (`build_profile` + `compare`) against Evidently's DataDriftPreset.

    uv run python -m bench.drift            # 1M x 1M rows, 3 rounds, 200 repetitions; docs block
    uv run python -m bench.drift --smoke    # 20k x 20k rows, 1 round, 10 repetitions, for CI

Three parts, all on the seeded frames of bench/drift_data.py (10 features, 6 numeric, 4
categorical):

1. speed and memory: both tools on the same reference and current frames, each run in a fresh
   process (wall time without imports, the process's peak RSS), median over rounds;
2. verdicts: per feature, drifted or not by each tool, against the known truth;
3. false alarms: many no-drift pairs at 500 and 5,000 rows (below and above the 1,000 reference
   rows where Evidently switches from tests to distance thresholds), alarm rate per feature.

The tools are called as their users call them:

- ours: `build_profile` on the reference, stored as JSON (the champion bundle keeps it so), read
  back, then `compare` on the current frame with the data set's default gates (alpha 0.05,
  dataset drift at a drifted share of 0.5), as the `<ds>/drift` asset does;
- Evidently: `Report([DataDriftPreset()])` with its defaults on the same frames, the column types
  given explicitly, per-column verdicts read from the report's own tests.

No network: Evidently's telemetry is opted out and every IP connection is refused and counted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.drift_data import CATEGORICAL, KINDS, NUMERIC, SCENARIOS, frame, scenario_frames
from bench.drift_tables import tables
from bench.report import DOCS_FILE, REPO, facts_block, machine_facts, write_block, write_results

TOOLS = ("ours", "evidently")
PACKAGES = ["evidently", "scipy", "numpy", "pandas"]


# --- the two tools, called as their users call them ---------------------------------------------

ALPHA = 0.05
DRIFT_SHARE = 0.5
# Evidently's opt-outs: its own telemetry reads DO_NOT_TRACK, the iterative-telemetry library
# ITERATIVE_DO_NOT_TRACK. Set before evidently is imported; subprocesses inherit them.
for _variable in ("DO_NOT_TRACK", "ITERATIVE_DO_NOT_TRACK"):
    os.environ.setdefault(_variable, "1")
NETWORK_ATTEMPTS: list[str] = []


def forbid_network() -> None:
    """Make every IP connection of this process fail, and count it: the benchmark must not
    reach the network (Evidently's telemetry included)."""
    for method in ("connect", "connect_ex"):
        setattr(socket.socket, method, _refusing_ip(getattr(socket.socket, method)))


def _refusing_ip(original):
    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            NETWORK_ATTEMPTS.append(str(address))
            raise OSError(f"bench.drift runs offline: refused a connection to {address}")
        return original(sock, address)

    return refuse


OUR_TESTS = {"ks": "KS", "chi2": "chi-squared", "chi2_discrete": "chi-squared (discrete)"}


def run_ours(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from mlops_assets.lib import drift

    stored = json.dumps(drift.build_profile(reference, KINDS))
    report = drift.compare(json.loads(stored), current, ALPHA, DRIFT_SHARE, columns=list(KINDS))
    features = {
        f.feature: {
            "drifted": f.drifted,
            "method": OUR_TESTS[f.test],
            "score": f.p_value,
            "score_kind": "p-value",
            "threshold": ALPHA,
            "distance_name": f.distance_name,
            "distance": f.distance,
        }
        for f in report.features
    }
    return {"features": features, "dataset_drift": report.dataset_drift}


def evidently_definition():
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[name for name, kind in KINDS.items() if kind == NUMERIC],
        categorical_columns=[name for name, kind in KINDS.items() if kind == CATEGORICAL],
    )


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = evidently_definition()
    report = Report([DataDriftPreset(drift_share=DRIFT_SHARE)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return evidently_verdicts(snapshot.dict())


def evidently_verdicts(result: dict) -> dict:
    """Per column: ValueDrift's method, score and threshold, drifted when its test failed;
    dataset drift when the drifted-columns test (share < drift_share) failed."""
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in result["tests"]}
    features, dataset_drift = {}, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            features[config["column"]] = {
                "drifted": failed[metric["id"]],
                "method": config["method"],
                "score": float(metric["value"]),
                "score_kind": "p-value" if "p_value" in config["method"] else "distance",
                "threshold": config["threshold"],
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            dataset_drift = failed[metric["id"]]
    return {"features": features, "dataset_drift": dataset_drift}


RUNNERS = {"ours": run_ours, "evidently": run_evidently}
IMPORTS = {"ours": "mlops_assets.lib.drift", "evidently": "evidently.presets"}


@dataclass(frozen=True)
class Plan:
    rows: int  # reference rows = current rows in the speed and verdict part
    rounds: int
    repetitions: int  # no-drift pairs per size in the false-alarm part
    sizes: tuple[int, ...]  # rows of each false-alarm pair (reference = current)


FULL = Plan(rows=1_000_000, rounds=3, repetitions=200, sizes=(500, 5_000))
SMOKE = Plan(rows=20_000, rounds=1, repetitions=10, sizes=(500, 5_000))


# --- one measurement in a fresh process --------------------------------------------------------


def child(tool: str, reference_path: str, current_path: str) -> None:
    """Load the frames, import the tool, then time it; prints one JSON line."""
    reference, current = pd.read_pickle(reference_path), pd.read_pickle(current_path)
    started = time.perf_counter()
    importlib.import_module(IMPORTS[tool])
    import_seconds = time.perf_counter() - started
    rss_before = reset_peak_rss()
    started = time.perf_counter()
    result = RUNNERS[tool](reference, current)
    result["seconds"] = time.perf_counter() - started
    result |= {
        "import_seconds": import_seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": status_mb("VmHWM"),
        "network_attempts": len(NETWORK_ATTEMPTS),
    }
    print(json.dumps(result))


def reset_peak_rss() -> float:
    """Reset this process's RSS high-water mark (Linux `clear_refs` 5), so the peak read after
    the run is the tool's and not a transient of loading the frames; returns the RSS now."""
    with contextlib.suppress(OSError):  # if not allowed, the peak includes loading the frames
        Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")


def status_mb(key: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1]) / 1024


def measure(tool: str, reference: Path, current: Path) -> dict:
    command = [sys.executable, "-m", "bench.drift", "--run", tool, str(reference), str(current)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if completed.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- part 1 and 2: speed, memory, verdicts -----------------------------------------------------


def write_frames(folder: Path, rows: int) -> dict[str, Path]:
    paths = {}
    for name, data in scenario_frames(rows).items():
        paths[name] = folder / f"{name.replace(' ', '_')}.pkl"
        data.to_pickle(paths[name])
    return paths


def speed_and_verdicts(plan: Plan, folder: Path) -> dict:
    """Per scenario and tool: the runs of every round (the tool order alternates by round)."""
    paths = write_frames(folder, plan.rows)
    runs = {scenario: {tool: [] for tool in TOOLS} for scenario in SCENARIOS}
    for round_ in range(plan.rounds):
        for scenario in SCENARIOS:
            for tool in TOOLS[::-1] if round_ % 2 else TOOLS:
                run = measure(tool, paths["reference"], paths[scenario])
                runs[scenario][tool].append(run)
                print(
                    f"round {round_ + 1}/{plan.rounds}  {scenario:<8}  {tool:<9} "
                    f"{run['seconds']:7.2f} s  peak RSS {run['peak_rss_mb']:6,.0f} MB  "
                    f"flagged {sum(f['drifted'] for f in run['features'].values())}/{len(KINDS)}",
                    flush=True,
                )
    return {scenario: summarise(by_tool) for scenario, by_tool in runs.items()}


def summarise(by_tool: dict[str, list[dict]]) -> dict:
    """Median time, highest peak; verdicts of the first round (the runs are deterministic)."""
    summary = {}
    for tool, runs in by_tool.items():
        summary[tool] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "seconds_all": [r["seconds"] for r in runs],
            "import_seconds": statistics.median(r["import_seconds"] for r in runs),
            "rss_before_mb": statistics.median(r["rss_before_mb"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "network_attempts": sum(r["network_attempts"] for r in runs),
            "features": runs[0]["features"],
            "dataset_drift": runs[0]["dataset_drift"],
            "same_verdicts_every_round": all(
                {k: f["drifted"] for k, f in r["features"].items()}
                == {k: f["drifted"] for k, f in runs[0]["features"].items()}
                for r in runs
            ),
        }
    return summary


# --- part 3: false alarms ----------------------------------------------------------------------


def false_alarms(plan: Plan) -> dict[int, dict]:
    """Alarm rates on no-drift pairs (reference and current drawn from the same distribution)."""
    return {size: false_alarms_at(size, plan.repetitions) for size in plan.sizes}


def false_alarms_at(size: int, repetitions: int) -> dict:
    alarms = {tool: Counter() for tool in TOOLS}
    methods = {tool: {name: Counter() for name in KINDS} for tool in TOOLS}
    dataset, any_feature = Counter(), Counter()
    started = time.perf_counter()
    for repetition in range(repetitions):
        rng = np.random.default_rng([size, repetition])
        reference, current = frame(size, rng), frame(size, rng)
        for tool in TOOLS:
            with warnings.catch_warnings():  # Evidently's chi-squared divides by zero counts
                warnings.simplefilter("ignore")
                result = RUNNERS[tool](reference, current)
            for name, verdict in result["features"].items():
                alarms[tool][name] += verdict["drifted"]
                methods[tool][name][verdict["method"]] += 1
            dataset[tool] += bool(result["dataset_drift"])
            any_feature[tool] += any(v["drifted"] for v in result["features"].values())
    print(
        f"false alarms at {size:,} rows: {repetitions} pairs in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return {
        "repetitions": repetitions,
        "features": {
            name: {tool: alarms[tool][name] / repetitions for tool in TOOLS} for name in KINDS
        },
        "methods": {
            name: {tool: _methods_used(methods[tool][name]) for tool in TOOLS} for name in KINDS
        },
        "dataset_drift": {tool: dataset[tool] / repetitions for tool in TOOLS},
        "any_feature": {tool: any_feature[tool] / repetitions for tool in TOOLS},
    }


def _methods_used(counts: Counter) -> str:
    return " / ".join(method for method, _ in counts.most_common())


# --- main --------------------------------------------------------------------------------------


def benchmark(plan: Plan) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        scenarios = speed_and_verdicts(plan, Path(folder))
    return {
        "plan": asdict(plan),
        "gates": {"alpha": ALPHA, "drift_share": DRIFT_SHARE},
        "machine": machine_facts(PACKAGES),
        "scenarios": scenarios,
        "false_alarms": false_alarms(plan),
        "network_attempts": len(NETWORK_ATTEMPTS)
        + sum(s[tool]["network_attempts"] for s in scenarios.values() for tool in TOOLS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="20k x 20k rows, 1 round, 10 pairs")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, help="rounds of the speed part (default 3; smoke 1)")
    parser.add_argument("--run", nargs=3, metavar=("TOOL", "REF", "CUR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    forbid_network()
    if args.run:
        child(*args.run)
        return 0
    plan = SMOKE if args.smoke else FULL
    if args.rounds:
        plan = Plan(plan.rows, args.rounds, plan.repetitions, plan.sizes)
    results = benchmark(plan)
    print(f"results: {write_results('drift', results)}")
    printed = tables(results)
    print("\n" + printed)
    print(f"\nnetwork connection attempts: {results['network_attempts']}")
    if not args.no_docs:
        network = {"IP connection attempts (refused)": str(results["network_attempts"])}
        write_block("drift", facts_block("bench.drift", results, network) + "\n\n" + printed)
        print(f"docs: {DOCS_FILE} (drift results block)")
    return 0 if results["network_attempts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
