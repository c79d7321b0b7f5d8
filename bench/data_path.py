"""Data path benchmark: `raw` + `validated` against pandas `read_csv` + pandera on the whole frame,
and against the physical limit: DuckDB reading the same CSV into a typed table, no rules.

    uv run python -m bench.data_path            # 1M and 10M rows; its block of docs/benchmarks.md
    uv run python -m bench.data_path --smoke    # 50k rows, one round, for CI
    uv run python -m bench.data_path --rows 3000000 --rounds 1 --no-docs   # one size, to iterate

Every size is measured on two files: a clean one (only bad values) and one in which 0.1% of the
lines also have too many or too few fields. Each measurement runs in a fresh Python process,
which reports its own wall time and peak RSS (the high-water mark of the whole process, DuckDB's
native memory included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import (
    DATA_PACKAGES,
    DOCS_FILE,
    facts_block,
    machine_facts,
    write_block,
    write_results,
)

HEADER = "Sex,Length,Diameter,Height,Whole weight,Shucked weight,Viscera weight,Shell weight,Rings"
BAD_SHARE = 0.01
MALFORMED_SHARE = 0.001
CHUNK = 500_000
FILES = ("clean", "malformed")
SUBJECTS = ("ours", "usual", "limit")


def generate(path: Path, rows: int, seed: int = 0, malformed_share: float = 0.0) -> None:
    """An abalone-shaped CSV with ~1% bad rows: bad numbers, unknown sex, missing target and
    out-of-range values; and `malformed_share` of its lines with one field too many or too few."""
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        handle.write(HEADER + "\n")
        for start in range(0, rows, CHUNK):
            text = _chunk(rng, min(CHUNK, rows - start))
            handle.write(_malform(rng, text, malformed_share) if malformed_share else text)


def _malform(rng: np.random.Generator, text: str, share: float) -> str:
    lines = text.splitlines()
    for index in np.flatnonzero(rng.random(len(lines)) < share):
        line = lines[index]
        lines[index] = line + ",1" if index % 2 else line.rsplit(",", 1)[0]
    return "\n".join(lines) + "\n"


def _chunk(rng: np.random.Generator, rows: int) -> str:
    length = rng.uniform(0.1, 0.8, rows)
    frame = pd.DataFrame(
        {
            "Sex": rng.choice(np.array(["M", "F", "I"]), rows),
            "Length": length.round(3),
            "Diameter": (length * 0.8).round(3),
            "Height": (length * 0.25).round(3),
            "Whole weight": (length**3 * 3).round(4),
            "Shucked weight": (length**3 * 1.3).round(4),
            "Viscera weight": (length**3 * 0.6).round(4),
            "Shell weight": (length**3 * 0.9).round(4),
            "Rings": (length * 20 + rng.normal(0, 1, rows)).round().clip(1, 29).astype(int),
        }
    ).astype(str)
    bad = rng.random(rows) < BAD_SHARE
    kinds = rng.integers(0, 4, rows)
    frame.loc[bad & (kinds == 0), "Length"] = "abc"
    frame.loc[bad & (kinds == 1), "Sex"] = "X"
    frame.loc[bad & (kinds == 2), "Rings"] = ""
    frame.loc[bad & (kinds == 3), "Diameter"] = "7.5"
    return frame.to_csv(header=False, index=False)


def run_ours(path: str, data_dir: str) -> dict:
    from mlops_assets.defs.resources import Warehouse
    from mlops_assets.lib.ingest import load_raw
    from mlops_assets.lib.spec import load_spec
    from mlops_assets.lib.validation import validate_partition
    from mlops_assets.settings import builtin_spec_path

    spec = load_spec(builtin_spec_path("abalone"))
    started = time.perf_counter()
    warehouse = Warehouse(  # as the assets use it; a DuckLake when the environment names one
        database=str(Path(data_dir) / "warehouse.duckdb"),
        lake_catalog=os.environ.get("MLOPS_LAKE_CATALOG"),
        lake_data_path=os.environ.get("MLOPS_LAKE_DATA_PATH"),
    )
    with warehouse.get_connection() as con:
        loaded = load_raw(con, spec, Path(path), "bench.csv")
        raw_done = time.perf_counter()
        summary = validate_partition(con, spec, "bench.csv")
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "raw_seconds": raw_done - started,
        "validated_seconds": finished - raw_done,
        "rows": loaded.rows,
        "valid": summary.valid,
        "quarantined": summary.quarantined,
    }


def run_limit(path: str, data_dir: str) -> dict:
    """The physical limit: DuckDB reads the CSV into a typed table (the spec's types), no rules;
    lines that do not parse as those types are skipped."""
    import duckdb

    from mlops_assets.lib.spec import load_spec
    from mlops_assets.lib.validation import SQL_TYPES
    from mlops_assets.settings import builtin_spec_path

    spec = load_spec(builtin_spec_path("abalone"))
    types = ", ".join(f"'{c.name}': '{SQL_TYPES[c.type]}'" for c in spec.columns)
    started = time.perf_counter()
    with duckdb.connect(str(Path(data_dir) / "limit.duckdb")) as con:
        con.execute("SET memory_limit = '1GB'")  # as the Warehouse resource sets it
        con.execute(
            "CREATE TABLE t AS SELECT * FROM read_csv($path, header=true, "
            f"columns={{{types}}}, auto_detect=false, ignore_errors=true)",
            {"path": path},
        )
        rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    return {"seconds": time.perf_counter() - started, "rows": rows, "quarantined": 0}


def run_usual(path: str, data_dir: str) -> dict:
    """What such projects usually do: the whole file in pandas, then pandera on the whole frame.
    Lines with too many fields are skipped (and counted as bad); too few leave NaN, which pandera
    finds."""
    import pandera.pandas as pa

    started = time.perf_counter()
    frame = pd.read_csv(path, on_bad_lines="skip")
    schema = pa.DataFrameSchema(
        {
            "Sex": pa.Column(str, pa.Check.isin(["M", "F", "I"])),
            "Length": pa.Column(float, pa.Check.in_range(0, 1), coerce=True),
            "Diameter": pa.Column(float, pa.Check.in_range(0, 1), coerce=True),
            "Height": pa.Column(float, pa.Check.in_range(0, 1.5), coerce=True),
            "Whole weight": pa.Column(float, pa.Check.in_range(0, 3), coerce=True),
            "Shucked weight": pa.Column(float, pa.Check.in_range(0, 2), coerce=True),
            "Viscera weight": pa.Column(float, pa.Check.in_range(0, 1), coerce=True),
            "Shell weight": pa.Column(float, pa.Check.in_range(0, 1.5), coerce=True),
            "Rings": pa.Column(float, pa.Check.in_range(0, 40), coerce=True),
        }
    )
    try:
        schema.validate(frame, lazy=True)
        bad = 0
    except pa.errors.SchemaErrors as errors:
        bad = errors.failure_cases["index"].dropna().nunique()
    seconds = time.perf_counter() - started
    with open(path, "rb") as handle:  # outside the timing: how many lines were skipped
        skipped = sum(1 for _ in handle) - 1 - len(frame)
    return {"seconds": seconds, "rows": len(frame) + skipped, "quarantined": int(bad) + skipped}


def measure(subject: str, path: Path, env: dict[str, str] | None = None) -> dict:
    """One measurement in a fresh process (with `env`, default this one's); its wall time, rows
    and peak RSS."""
    with tempfile.TemporaryDirectory() as data_dir:
        output = subprocess.run(
            [sys.executable, "-m", "bench.data_path", "--run", subject, str(path), data_dir],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(subject: str, path: str, data_dir: str) -> None:
    result = {"ours": run_ours, "usual": run_usual, "limit": run_limit}[subject](path, data_dir)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's high-water mark. Not `ru_maxrss`: Linux carries it across exec, so a child
    would report the parent's peak (the generated files') when that is higher."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


def benchmark(sizes: list[int], rounds: int, folder: Path) -> list[dict]:
    rows = []
    for size in sizes:
        for kind in FILES:
            path = folder / f"abalone_{size}_{kind}.csv"
            generate(path, size, malformed_share=MALFORMED_SHARE if kind == "malformed" else 0.0)
            for subject in SUBJECTS:
                runs = [measure(subject, path) for _ in range(rounds)]
                seconds = statistics.median(r["seconds"] for r in runs)
                rows.append(
                    {
                        "rows": size,
                        "file": kind,
                        "subject": subject,
                        "file_mb": path.stat().st_size / 2**20,
                        "seconds": seconds,
                        "rows_per_s": size / seconds,
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                        "quarantined": runs[0]["quarantined"],
                        "stages": {
                            key: statistics.median(r[key] for r in runs)
                            for key in ("raw_seconds", "validated_seconds")
                            if key in runs[0]
                        },
                        "rounds": rounds,
                    }
                )
                print(_line(rows[-1]), flush=True)
            path.unlink()
    return rows


def _line(row: dict) -> str:
    return (
        f"{row['rows']:>10,} rows  {row['subject']:<6} {row['seconds']:8.1f} s  "
        f"{row['rows_per_s']:>12,.0f} rows/s  peak RSS {row['peak_rss_mb']:8.0f} MB  "
        f"file {row['file']:<9} quarantined {row['quarantined']:,}"
        + "".join(f"  {k.removesuffix('_seconds')} {v:.2f} s" for k, v in row["stages"].items())
    )


NAMES = {
    "ours": "`raw` + `validated` (landed file, spec rules in SQL)",
    "usual": "pandas `read_csv` + pandera, whole frame",
    "limit": "limit: DuckDB `read_csv` into a typed table, no rules",
}


def _pick(rows: list[dict], size: int, kind: str, subject: str) -> dict:
    return next(
        r
        for r in rows
        if (r["rows"], r.get("file", "clean"), r["subject"]) == (size, kind, subject)
    )


def markdown(rows: list[dict]) -> str:
    lines = [
        "| rows | file | approach | time (s) | rows/s | peak RSS (MB) | bad rows found "
        "| ours/usual | ours/limit |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sorted({r["rows"] for r in rows}):
        for kind in FILES:
            ours = _pick(rows, size, kind, "ours")
            for subject in SUBJECTS:
                row = _pick(rows, size, kind, subject)
                to_usual = _pick(rows, size, kind, "usual")["seconds"] / ours["seconds"]
                to_limit = _pick(rows, size, kind, "limit")["seconds"] / ours["seconds"]
                ratios = f"{to_usual:.2f}x | {to_limit:.2f}x" if row is ours else " | "
                found = f"{row['quarantined']:,}" if subject != "limit" else "(no rules)"
                lines.append(
                    f"| {size:,} | {kind}, {row['file_mb']:.0f} MB | {NAMES[subject]} | "
                    f"{row['seconds']:.1f} | {row['rows_per_s']:,.0f} | "
                    f"{row['peak_rss_mb']:,.0f} | {found} | {ratios} |"
                )
    return "\n".join(lines)


def targets_table(rows: list[dict]) -> str:
    """The issue's targets at the largest size, against what was measured."""
    largest = max(r["rows"] for r in rows)
    ours, usual, limit = (_pick(rows, largest, "clean", s) for s in SUBJECTS)
    speed = usual["seconds"] / ours["seconds"]
    to_limit = limit["seconds"] / ours["seconds"]
    malformed = _pick(rows, largest, "malformed", "ours")["seconds"] / ours["seconds"]
    peak = max(r["peak_rss_mb"] for r in rows if r["subject"] == "ours")

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    return "\n".join(
        [
            "| target | measured | met |",
            "|---|---:|---|",
            f"| at least 3x the usual approach's rows/s at {largest:,} rows | {speed:.2f}x | "
            f"{met(speed >= 3)} |",
            f"| peak RSS under 1.5 GB | {peak:,.0f} MB | {met(peak < 1536)} |",
            f"| at least 0.5x the limit's rows/s | {to_limit:.2f}x | {met(to_limit >= 0.5)} |",
            f"| a file with 0.1% malformed lines takes at most 1.3x the clean file's time | "
            f"{malformed:.2f}x | {met(malformed <= 1.3)} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="50k rows, one round")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--rows", help="comma-separated sizes instead of 1M and 10M")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 2)")
    parser.add_argument(
        "--run", nargs=3, metavar=("SUBJECT", "FILE", "DATA_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.run:
        child(*args.run)
        return 0
    sizes, rounds = ([50_000], 1) if args.smoke else ([1_000_000, 10_000_000], 2)
    if args.rows:
        sizes = [int(size) for size in args.rows.split(",")]
    rounds = args.rounds or rounds
    with tempfile.TemporaryDirectory() as folder:
        rows = benchmark(sizes, rounds, Path(folder))
    results = {
        "machine": machine_facts(DATA_PACKAGES),
        "plan": {
            "sizes": sizes,
            "rounds": rounds,
            "bad_share": BAD_SHARE,
            "malformed_share": MALFORMED_SHARE,
        },
        "rows": rows,
    }
    print(f"results: {write_results('data-path', results)}")
    tables = markdown(rows) + "\n\n" + targets_table(rows)
    print("\n" + tables)
    if not args.no_docs:
        write_block("data_path", facts_block("bench.data_path", results) + "\n\n" + tables)
        print(f"docs: {DOCS_FILE} (data_path results block)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
