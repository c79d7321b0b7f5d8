"""Shared by the benchmarks: the machine a run measured on, its JSON results file, and the marked
results block of docs/benchmarks.md a full run replaces (machine, date, versions, tables).

The interpretation around each block is written by hand in the doc; nothing here writes prose.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DATA_PACKAGES = ["duckdb", "pandas", "pandera", "scikit-learn"]
# the UCI abalone file the benchmarks use when the shared data folder is there
SHARED_ABALONE = REPO.parent / "shared" / "data" / "abalone.csv"
# Python that loads a subject's code location as its code server does: a `@dg.definitions`
# function is called (importing the module builds nothing), a baseline's module-level
# Definitions was built by the import
LOAD_CODE_LOCATION = "import mlops_assets.definitions as m; callable(m.defs) and m.defs()"


def machine_facts(packages: list[str]) -> dict:
    """What a result depends on: cores, CPU, memory, kernel, Python, package versions, date."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in packages},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def write_results(name: str, results: dict) -> Path:
    """The raw results as `bench/results/<name>-<UTC stamp>.json` (git-ignored); the file name is
    recorded in the results as `results_file`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results["results_file"] = f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path = RESULTS_DIR / results["results_file"]
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def facts_block(module: str, results: dict, extra: dict[str, str] | None = None) -> str:
    """The list above a block's tables: command, results file, machine, versions, date, plan."""
    machine = results["machine"]
    versions = ", ".join(f"{name} {number}" for name, number in machine["packages"].items())
    lines = {
        "Command": f"`uv run python -m {module}`; raw results "
        f"`bench/results/{results['results_file']}` (git-ignored)",
        "Machine": f"{machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"Linux {machine['kernel']}",
        "Versions": f"Python {machine['python']}, {versions}",
        "Date": machine["date"],
        "Plan": ", ".join(f"{key} {value}" for key, value in results["plan"].items()),
        **(extra or {}),
    }
    return "\n".join(f"- {label}: {value}." for label, value in lines.items())


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} results: begin -->", f"<!-- {name} results: end -->"


def write_block(name: str, body: str, path: Path = DOCS_FILE) -> None:
    """Replace what stands between the `name` begin and end markers of the doc with `body`.
    Without exactly one pair of markers, in order, the doc is left untouched and ValueError
    says which marker is wrong."""
    text = path.read_text()
    begin, end = markers(name)
    for marker in (begin, end):
        if text.count(marker) != 1:
            raise ValueError(f"{path}: expected the marker {marker!r} once, found it "
                             f"{text.count(marker)} times; the doc is unchanged")  # fmt: skip
    start, stop = text.index(begin) + len(begin), text.index(end)
    if stop < start:
        raise ValueError(f"{path}: {end!r} comes before {begin!r}; the doc is unchanged")
    path.write_text(text[:start] + "\n" + body.strip() + "\n" + text[stop:])


def load_average_fact(load: dict[str, float]) -> dict[str, str]:
    """The facts line of the 1-minute load average before and after a run (a shared machine's
    noise)."""
    return {"Load average (1 min)": f"{load['before']:.2f} before, {load['after']:.2f} after"}


def publish(name: str, module: str, results: dict, markdown, docs: bool, extra=None) -> None:
    """Write the raw results, print the tables (`markdown(results)`) and, with `docs`, replace
    the `name` block of docs/benchmarks.md with the facts and the tables."""
    write_results(name, results)
    tables = markdown(results)
    print(tables)
    if docs:
        write_block(name, f"{facts_block(module, results, extra)}\n\n{tables}")
