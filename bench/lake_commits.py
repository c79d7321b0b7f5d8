"""DuckLake catalog commits per second: W writer processes commit small inserts for a fixed time,
on a DuckLake with its catalog in a throwaway PostgreSQL 15 and its data in a local folder.

    uv run python -m bench.lake_commits                   # W = 1, 2, 4, 8, 10 s each; docs block
    uv run python -m bench.lake_commits --smoke --no-docs # W = 2, 1 s each (CI)

Three kinds of commit, each W on a fresh lake (its own catalog database and folder):
- own-table: each writer appends to its own table (what different data sets or steps do);
- one-table: every writer appends to one table (the partitions of one data set; DuckLake retries
  a conflicting append itself);
- replace: every writer replaces one shared table (the conflict the `Warehouse` resource turns
  into a Dagster retry); a conflict is counted, not retried.
The reference is the embedded DuckDB file with one writer (it takes no more). Every writer
commits one statement at a time (autocommit) and times it. After each run the rows written are
checked against the commits the writers were told succeeded, and on a lake the catalog's new
snapshots too. Apart, the catalog commits of one real partition load (`raw` + `validated` of an
iris file, through the functions the assets call).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from bench.report import load_average_fact, machine_facts, publish

PACKAGES = ["duckdb", "duckdb-extension-ducklake", "duckdb-extension-postgres-scanner"]
KINDS = ("own-table", "one-table", "replace")
FILE_REFERENCE = "duckdb-file"
SCHEMA = "bench"


def target_table(kind: str, writer: int) -> str:
    if kind in ("own-table", FILE_REFERENCE):
        return f"{SCHEMA}.t{writer}"
    return f"{SCHEMA}.shared" if kind == "one-table" else f"{SCHEMA}.replaced"


def commit_sql(kind: str, writer: int, seq: int, rows: int) -> str:
    """One commit: `rows` rows tagged with the writer and its commit number."""
    select = f"SELECT {writer} AS writer, {seq} AS seq, range AS i FROM range({rows})"
    if kind == "replace":
        return f"CREATE OR REPLACE TABLE {target_table(kind, writer)} AS {select}"
    return f"INSERT INTO {target_table(kind, writer)} {select}"


def connect(target: str, data_path: str) -> duckdb.DuckDBPyConnection:
    """The DuckDB file `target`, or the DuckLake whose catalog `target` names."""
    if not target.startswith("postgres:"):
        return duckdb.connect(target)
    from mlops_assets.lib.warehouse import attach_lake

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    attach_lake(con, target, data_path)
    return con


# ---------------------------------------------------------------- one writer process


def writer(args) -> None:
    """Connect, say `ready`, wait for `go` on stdin, commit for `seconds`, print the counts."""
    from mlops_assets.defs.resources import LAKE_CONFLICT

    con = connect(args.target, args.data_path)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies, conflicts, errors, last_error = [], 0, 0, ""
    deadline = time.perf_counter() + args.seconds
    while (started := time.perf_counter()) < deadline:
        sql = commit_sql(args.kind, args.writer_id, len(latencies), args.rows)
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            conflicts += LAKE_CONFLICT in str(exc)
            errors += LAKE_CONFLICT not in str(exc)
            last_error = str(exc)[:600]
            continue
        latencies.append(time.perf_counter() - started)
    con.close()
    result = {"latencies": latencies, "conflicts": conflicts, "errors": errors}
    print(json.dumps(result | {"last_error": last_error}), flush=True)


# ---------------------------------------------------------------- one run of W writers


def run_writers(kind: str, count: int, target: str, data_path: str, args, postgres=None) -> dict:
    """`count` writer processes committing at once; their counts, checked against the data."""
    prepare(kind, count, target, data_path)
    before = snapshots(target, data_path)
    processes = start_writers(kind, count, target, data_path, args)
    try:
        for process in processes:
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a writer did not start:\n{process.communicate()[1][-3000:]}")
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        connections = catalog_connections(postgres, target, args.seconds)
        outputs = [finish(process, args.seconds) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    result = summarize(outputs, args.seconds)
    result.update(kind=kind, writers=count, catalog_connections=connections)
    result.update(check(kind, target, data_path, outputs, args.rows, before))
    print(line(result), flush=True)
    return result


def line(r: dict) -> str:
    p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-"
    return (
        f"{r['kind']:<11} W={r['writers']}  {r['commits_per_s']:7.1f} commits/s  p50 {p50} ms  "
        f"conflicts {r['conflicts']}  errors {r['errors']}  rows == commits: "
        f"{r['rows_match_commits']}  {' '.join(r['last_error'].splitlines()[:2])}"
    )


def start_writers(kind: str, count: int, target: str, data_path: str, args) -> list:
    command = [sys.executable, "-m", "bench.lake_commits", "--writer", kind, "--target", target,
               "--data-path", data_path, "--seconds", str(args.seconds),
               "--rows", str(args.rows)]  # fmt: skip
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return [
        subprocess.Popen([*command, "--writer-id", str(n)], text=True, **pipes)
        for n in range(count)
    ]


def prepare(kind: str, count: int, target: str, data_path: str) -> None:
    """The schema and every table the writers commit to, so that no creation conflicts."""
    con = connect(target, data_path)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for n in range(count):
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {target_table(kind, n)} "
            "(writer INTEGER, seq INTEGER, i BIGINT)"
        )
    con.close()


def snapshots(target: str, data_path: str) -> int | None:
    """The catalog's snapshot count (None for the DuckDB file, which has none)."""
    if not target.startswith("postgres:"):
        return None
    con = connect(target, data_path)
    try:
        return con.execute(
            "SELECT count(*) FROM ducklake_snapshots(current_database())"
        ).fetchone()[0]
    finally:
        con.close()


def catalog_connections(postgres, target: str, seconds: float) -> int | None:
    """The most client connections to the catalog's database seen during the run (this process
    holds none: it asks from the `postgres` database)."""
    if postgres is None:
        time.sleep(seconds)
        return None
    database = target.split("dbname=", 1)[1].split()[0]
    seen, deadline = 0, time.monotonic() + seconds
    with postgres.connect("postgres") as pg:
        pg.autocommit = True
        while time.monotonic() < deadline:
            with pg.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend'",
                    [database],
                )
                seen = max(seen, cursor.fetchone()[0])
            time.sleep(min(0.5, seconds / 4))
    return seen


def finish(process: subprocess.Popen, seconds: float) -> dict:
    stdout, stderr = process.communicate(timeout=seconds + 120)
    if process.returncode:
        raise RuntimeError(f"a writer failed ({process.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def summarize(outputs: list[dict], seconds: float) -> dict:
    latencies = np.array([t for output in outputs for t in output["latencies"]]) * 1000
    commits = len(latencies)
    return {
        "commits": commits,
        "commits_per_s": commits / seconds,
        "p50_ms": float(np.percentile(latencies, 50)) if commits else None,
        "p99_ms": float(np.percentile(latencies, 99)) if commits else None,
        "conflicts": sum(output["conflicts"] for output in outputs),
        "errors": sum(output["errors"] for output in outputs),
        "last_error": next((o["last_error"] for o in outputs if o["errors"]), ""),
    }


def check(kind: str, target: str, data_path: str, outputs: list[dict], rows: int, before) -> dict:
    """Rows against acknowledged commits: every (writer, seq) acknowledged is there with all its
    rows and nothing else is (replace: the table holds one acknowledged commit); on a lake, one
    new snapshot per acknowledged commit."""
    acknowledged = {
        (n, seq) for n, out in enumerate(outputs) for seq in range(len(out["latencies"]))
    }
    con = connect(target, data_path)
    try:
        tables = {target_table(kind, n) for n in range(len(outputs))}
        found = [
            row
            for name in sorted(tables)
            for row in con.execute(
                f"SELECT writer, seq, count(*) FROM {name} GROUP BY ALL"
            ).fetchall()
        ]
        inlined = None
        if before is not None:
            changes = con.execute(
                "SELECT changes FROM ducklake_snapshots(current_database()) "
                "ORDER BY snapshot_id DESC LIMIT 1"
            ).fetchone()[0]
            inlined = any(key.startswith("inlined") for key in changes)
    finally:
        con.close()
    complete = all(count == rows for *_, count in found)
    keys = {(writer_id, seq) for writer_id, seq, _ in found}
    rows_ok = complete and (keys <= acknowledged and len(keys) == 1 if kind == "replace"
                            else keys == acknowledged)  # fmt: skip
    new_snapshots = None if before is None else snapshots(target, data_path) - before
    snapshots_ok = new_snapshots is None or new_snapshots == len(acknowledged)
    return {"rows_match_commits": rows_ok and snapshots_ok, "new_snapshots": new_snapshots,
            "inlined": inlined}  # fmt: skip


# ---------------------------------------------------------------- one partition load


def partition_load_commits(postgres, root: Path) -> list[int]:
    """The catalog commits of `raw` + `validated` of two iris partitions on a fresh lake (the
    first creates the data set's tables), through the calls the assets make."""
    from mlops_assets.defs.ingestion.checks import evaluate_validated_checks
    from mlops_assets.lib import quality
    from mlops_assets.lib.ingest import load_raw
    from mlops_assets.lib.spec import load_spec
    from mlops_assets.lib.validation import check_columns, validate_partition
    from mlops_assets.settings import builtin_spec_path
    from mlops_assets_tests.synthetic import iris_like, iris_source

    spec = load_spec(builtin_spec_path("iris"))
    target = lake_catalog(postgres, "lake_partition")
    data_path = f"{root / 'lake_partition'}/"
    commits = []
    for n in range(2):
        path = root / f"part{n}.csv"
        iris_like(iris_source(), 150, seed=n).to_csv(path, index=False)
        before = snapshots(target, data_path)
        con = connect(target, data_path)
        try:
            load_raw(con, spec, path, path.name)
            check_columns(quality.file_columns(con, spec.name, path.name), spec, path.name)
            summary = validate_partition(con, spec, path.name)
            evaluate_validated_checks(con, spec, path.name, summary)
        finally:
            con.close()
        commits.append(snapshots(target, data_path) - before)
    print(f"partition load: {commits[0]} catalog commits (first, new lake), {commits[1]} "
          "(next partition)", flush=True)  # fmt: skip
    return commits


def lake_catalog(postgres, database: str) -> str:
    postgres.create_database(database)
    return (
        f"postgres:dbname={database} host={postgres.host} port={postgres.port} user={postgres.user}"
    )


# ---------------------------------------------------------------- report


COLUMNS = ["warehouse, commit kind", "writers", "commits/s", "ratio to the file",
           "per writer, /s", "p50, ms", "p99, ms", "conflicts", "errors",
           "catalog connections", "rows == commits"]  # fmt: skip


def cells(r: dict, base: float) -> list[str]:
    """One run's row; `base` is the DuckDB file's commits per second."""
    label = "DuckDB file" if r["kind"] == FILE_REFERENCE else f"DuckLake, {r['kind']}"
    p50, p99 = (f"{r[k]:.1f}" if r[k] is not None else "-" for k in ("p50_ms", "p99_ms"))
    per_s = r["commits_per_s"]
    return [f"{label} W={r['writers']}", str(r["writers"]), f"{per_s:.1f}", f"{per_s / base:.2f}x",
            f"{per_s / r['writers']:.1f}", p50, p99, str(r["conflicts"]), str(r["errors"]),
            "-" if r["catalog_connections"] is None else str(r["catalog_connections"]),
            "yes" if r["rows_match_commits"] else "**no**"]  # fmt: skip


def markdown(results: dict) -> str:
    base = results["runs"][0]["commits_per_s"]
    rows = [COLUMNS, ["---"] + ["---:"] * (len(COLUMNS) - 2) + ["---"]]
    rows += [cells(r, base) for r in results["runs"]]
    first, later = results["partition_load_commits"]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + (
        f"\n\nOne partition load (`raw` + `validated`, 150 iris rows): {later} catalog commits "
        f"({first} for the first partition of a new lake, which creates the tables)."
    )


# ---------------------------------------------------------------- main


def run_all(args, postgres, root: Path) -> list[dict]:
    runs = [run_writers(FILE_REFERENCE, 1, str(root / "reference.duckdb"), "", args)]
    for kind in args.kinds.split(","):
        for count in (int(w) for w in args.writers.split(",")):
            name = f"lake_{kind.replace('-', '_')}_{count}"
            target, data_path = lake_catalog(postgres, name), f"{root / name}/"
            runs.append(run_writers(kind, count, target, data_path, args, postgres))
    return runs


def measure(args) -> dict:
    """Every writer run and the partition load, on one throwaway PostgreSQL."""
    from mlops_assets_tests.deploy import services

    postgres, stop_postgres = services.start_postgres()
    root = Path(tempfile.mkdtemp(prefix="mlops-lake-commits-"))
    try:
        return {"runs": run_all(args, postgres, root),
                "partition_load_commits": partition_load_commits(postgres, root)}  # fmt: skip
    finally:
        stop_postgres()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", default="1,2,4,8", help="writer counts, comma-separated")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seconds", type=float, default=10.0, help="each run's commit window")
    parser.add_argument("--rows", type=int, default=100, help="rows of each commit")
    parser.add_argument("--smoke", action="store_true", help="W = 2, 1 s")
    parser.add_argument("--no-docs", action="store_true")
    # a writer process's own arguments
    parser.add_argument("--writer", choices=[*KINDS, FILE_REFERENCE], help=argparse.SUPPRESS)
    parser.add_argument("--writer-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--data-path", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        args.kind = args.writer
        return writer(args)
    if args.smoke:
        args.writers, args.seconds = "2", 1.0
    load_before = os.getloadavg()[0]
    measured = measure(args)
    load = {"before": load_before, "after": os.getloadavg()[0]}
    plan = {k: getattr(args, k) for k in ("writers", "kinds", "seconds", "rows")}
    results = {"machine": machine_facts(PACKAGES), "plan": plan, "load_average": load, **measured}
    runs = results["runs"]
    inlined = any(r["inlined"] for r in runs)
    extra = load_average_fact(results["load_average"]) | {
        "Each lake run's last commit wrote a Parquet file (not inlined into the catalog)": "**no**"
        if inlined
        else "yes"
    }
    publish("lake_commits", "bench.lake_commits", results, markdown, not args.no_docs, extra)


if __name__ == "__main__":
    main()
