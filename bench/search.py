"""Search benchmark: the candidates' Optuna search against the grid at the same wall-clock budget.

    uv run python -m bench.search            # abalone and diabetes, budgets 1x, 5x, 20x; docs block
    uv run python -m bench.search --smoke    # diabetes only, 1x, for CI

Per data set and family: `fit_candidate` with the grid (search, then the refit on every training
row), timed; then with an Optuna study (a fresh one, in a temporary SQLite file) whose `seconds`
budget is the grid's time for that family, times a factor. Both score their choice on the same
holdout. The study's SQLite tables are created before the first timing (a data folder creates
them once). Everything runs in one process with one thread per library (threadpoolctl), so the
comparison measures the searches, not OpenMP's threads contending with the rest of the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from bench.report import (
    DATA_PACKAGES,
    DOCS_FILE,
    SHARED_ABALONE,
    facts_block,
    machine_facts,
    write_block,
    write_results,
)
from mlops_assets.lib.search import Study, load_study
from mlops_assets.lib.sources import fetch_source
from mlops_assets.lib.spec import DatasetSpec, Search, load_spec
from mlops_assets.lib.training import families, fit_candidate, holdout_metrics
from mlops_assets.settings import builtin_spec_path

DATASETS = ("abalone", "diabetes")
FACTORS = (1, 5, 20)


def abalone_source() -> Path | None:
    """`MLOPS_SOURCE_ABALONE`, else the shared copy, else None: the run makes no download."""
    named = os.environ.get("MLOPS_SOURCE_ABALONE")
    for path in (Path(named) if named else None, SHARED_ABALONE):
        if path is not None and path.is_file():
            return path
    return None


def read_frame(spec: DatasetSpec, folder: Path) -> pd.DataFrame | None:
    if spec.name != "abalone":
        return pd.read_csv(fetch_source(spec, folder))  # scikit-learn's bundled copy
    path = abalone_source()
    if path is None:
        return None
    names = [c.name for c in spec.columns]
    has_header = path.read_text().split(",", 1)[0] == names[0]
    return pd.read_csv(path, header=0 if has_header else None, names=names)


def split(spec: DatasetSpec, frame: pd.DataFrame):
    x = frame[[c.name for c in spec.feature_columns]]
    y = frame[spec.target].to_numpy()
    return train_test_split(
        x, y, test_size=spec.split.test_fraction, random_state=spec.split.seed
    )  # x_train, x_test, y_train, y_test


def timed_fit(family, spec: DatasetSpec, data, study: Study | None = None) -> tuple:
    x_train, x_test, y_train, y_test = data
    started = time.perf_counter()
    candidate = fit_candidate(family, spec, x_train, y_train, study=study)
    seconds = time.perf_counter() - started
    holdout = holdout_metrics(spec.task, candidate.model, x_test, y_test)
    return candidate, seconds, holdout[f"test_{spec.selection_metric}"]


def row(spec, family, search, budget, candidate, seconds, holdout, pruned=0) -> dict:
    return {
        "dataset": spec.name,
        "family": family.name,
        "search": search,
        "budget_s": budget,
        "trials": candidate.trials,
        "pruned": pruned,
        "cv": candidate.cv_score,
        "holdout": holdout,
        "seconds": seconds,
        "params": {k: float(v) for k, v in candidate.params.items()},
    }


def bench_family(spec, family, data, factors, folder: Path) -> list[dict]:
    grid = timed_fit(family, spec, data)
    rows = [row(spec, family, "grid", None, *grid)]
    for factor in factors:
        budget = grid[1] * factor
        tuned = spec.model_copy(update={"search": Search(backend="optuna", seconds=budget)})
        reports = []
        name = f"{spec.name}.{family.name}.x{factor}"
        study = Study(folder / "optuna.db", name, on_trial=reports.append)
        found = timed_fit(family, tuned, data, study)
        pruned = sum(report.pruned for report in reports)
        rows.append(row(spec, family, f"optuna {factor}x", budget, *found, pruned=pruned))
    return rows


def chosen(rows: list[dict], spec: DatasetSpec) -> list[dict]:
    """Per search: the family the platform would keep (best cross-validated score), its holdout
    score, and the search's total time over the families."""
    best = max if spec.higher_is_better else min
    summary = []
    for search in dict.fromkeys(r["search"] for r in rows):
        mine = [r for r in rows if r["search"] == search]
        pick = best(mine, key=lambda r: r["cv"])
        total = sum(r["seconds"] for r in mine)
        summary.append({"dataset": spec.name, "search": search, "family": pick["family"],
                        "holdout": pick["holdout"], "seconds": total})  # fmt: skip
    return summary


def detail_table(rows: list[dict], metric: str) -> str:
    lines = [
        f"| data set | family | search | budget (s) | settings tried (pruned) | cv {metric} "
        f"| holdout {metric} | time (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        budget = "-" if r["budget_s"] is None else f"{r['budget_s']:.1f}"
        lines.append(
            f"| {r['dataset']} | {r['family']} | {r['search']} | {budget} | "
            f"{r['trials']} ({r['pruned']}) | {r['cv']:.4f} | {r['holdout']:.4f} | "
            f"{r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def summary_table(summary: list[dict], metric: str) -> str:
    lines = [
        f"| data set | search | chosen family (best cv) | its holdout {metric} "
        "| time, all families (s) |",
        "|---|---|---|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['dataset']} | {s['search']} | {s['family']} | {s['holdout']:.4f} | "
            f"{s['seconds']:.1f} |"
        )
    return "\n".join(lines)


def run(datasets: tuple[str, ...], factors: tuple[int, ...]) -> dict:
    rows, summary, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        # the storage's tables, created once as in a data folder that has searched before
        load_study(Study(Path(folder) / "optuna.db", "warm-up"))
        for name in datasets:
            spec = load_spec(builtin_spec_path(name))
            frame = read_frame(spec, Path(folder) / "sources")
            if frame is None:
                skipped.append(f"{name}: no local copy (MLOPS_SOURCE_ABALONE or {SHARED_ABALONE})")
                continue
            data = split(spec, frame)
            mine = []
            for family in families(spec.task):
                print(f"{name}: {family.name}", file=sys.stderr, flush=True)
                mine += bench_family(spec, family, data, factors, Path(folder))
            rows += mine
            summary += chosen(mine, spec)
    return {"rows": rows, "summary": summary, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="diabetes only, 1x the grid's time")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()
    datasets, factors = (("diabetes",), (1,)) if args.smoke else (DATASETS, FACTORS)
    load = os.getloadavg()[0]
    with threadpool_limits(1):
        results = run(datasets, factors)
    results["machine"] = machine_facts([*DATA_PACKAGES, "optuna"])
    results["plan"] = {
        "data sets": list(datasets),
        "optuna budgets (x the grid's time)": list(factors),
        "threads": 1,
    }
    results["load_average"] = load
    write_results("search", results)
    body = report(results)
    print(body)
    if not args.smoke and not args.no_docs:
        write_block("search", body, DOCS_FILE)
    return 0


def report(results: dict) -> str:
    extra = {"Load average (1 min) at the start": f"{results['load_average']:.1f}"}
    if results["skipped"]:
        extra["Skipped"] = "; ".join(results["skipped"])
    metric = "r2"  # both data sets are regressions selected on r2
    return "\n\n".join(
        [
            facts_block("bench.search", results, extra),
            "### The chosen candidate per search",
            summary_table(results["summary"], metric),
            "### Per family",
            detail_table(results["rows"], metric),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
