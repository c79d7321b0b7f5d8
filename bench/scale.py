"""Scale benchmark: N data sets x M landed partitions, from the files' arrival to the last
partition validated, on the embedded default against the scale-out profile with 1 and 2 Celery
workers, same machine, same run; and the data path (`raw` + `validated` of one file) on the
DuckDB file beside a DuckLake.

    uv run python -m bench.scale                   # 3 x 4, 20,000 rows a file; docs block
    uv run python -m bench.scale --smoke --no-docs # 1 x 2, embedded and 1 worker (CI)

Each profile runs the daemon as a deployment does, in its own folders, and the landing sensor
starts one run per landed file (`raw` + `validated` of that partition), as when files arrive:
- embedded: the repository's dagster.yaml (SQLite instance in a fresh home, the `duckdb` pool at
  1: one writer of the DuckDB file at a time), steps in the run's own processes;
- celery-K: deploy/dagster.yaml (the instance on a throwaway PostgreSQL 15), the warehouse a
  DuckLake (catalog in that PostgreSQL, data in a folder), the pool at 4, code server + daemon +
  webserver, and K workers (`dagster-celery worker`, one step at a time each) with their own
  data folder and Dagster home, on Redis.
The `automation` sensor is stopped first, so that no training joins the measured runs. Every
partition is checked after: raw = validated + quarantine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import data_path
from bench.report import load_average_fact, machine_facts, publish

PACKAGES = ["dagster", "dagster-celery", "celery", "duckdb", "duckdb-extension-ducklake"]
REPO = Path(__file__).resolve().parents[1]
BUILTINS = "iris,diabetes,abalone"  # paused: only the benchmark's own data sets land files
LANDING_TAG = "mlops/landing_file"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def write_specs(folder: Path, datasets: int) -> list[str]:
    from mlops_assets_tests.synthetic import iris_like_specs

    return iris_like_specs(folder, [f"scale_{n}" for n in range(1, datasets + 1)])


def drop_files(landing: Path, names: list[str], partitions: int, rows: int) -> int:
    """Every data set's files, then all their `.done` markers at once; returns the count."""
    from mlops_assets_tests.synthetic import drop_file, iris_like, iris_source, mark_done

    source = iris_source()
    for i, name in enumerate(names):
        for k in range(partitions):
            drop_file(landing / name, f"part{k}.csv", iris_like(source, rows, i * 100 + k), False)
    for name in names:
        for k in range(partitions):
            mark_done(landing / name, f"part{k}.csv")
    return len(names) * partitions


def run_profile(profile: str, args, postgres, broker: str, root: Path) -> dict:
    from mlops_assets_tests.deploy import services

    folder = root / profile
    folder.mkdir()
    names = write_specs(folder / "specs", args.datasets)
    data = folder / "data"
    env = services.base_env()
    env.update(
        MLOPS_DATA_DIR=str(data),
        MLOPS_DATASETS_DIR=str(folder / "specs"),
        MLOPS_PAUSED_DATASETS=BUILTINS,
        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
    )
    home, workers, running = folder / "dagster_home", [], []
    try:
        if profile == "embedded":
            running.append(start_embedded(home, env, folder))
        else:
            k = int(profile.split("-")[1])
            deployment = start_scaleout(k, home, env, postgres, broker, folder)
            running += deployment.services
            for n in range(1, k + 1):
                workers.append(start_worker(f"worker{n}", env, folder, data / "landing"))
        started = time.time()
        expected = drop_files(data / "landing", names, args.partitions, args.rows)
        runs = wait_for_runs(home, env, expected, args.timeout)
        result = summarize(runs, started)
        result["accounting"] = partition_accounting(env, names)
    finally:
        for service in [*workers, *reversed(running)]:
            service.stop()
    result.update(profile=profile, workers=len(workers), runs_expected=expected)
    print(line(result), flush=True)
    return result


def start_embedded(home: Path, env: dict[str, str], folder: Path):
    """The repository's dagster.yaml in a fresh home and the daemon on workspace.yaml."""
    from mlops_assets_tests.deploy import services

    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env["DAGSTER_HOME"] = str(home)
    workspace = ["-w", str(REPO / "workspace.yaml")]
    # before the daemon: two processes creating one SQLite instance at once collide
    dagster(["sensor", "stop", "automation", *workspace], env, folder)
    daemon = [str(services.VENV_BIN / "dagster-daemon"), "run", *workspace]
    return services.start_service("dagster-daemon", daemon, env, folder, lambda: True)


def start_scaleout(k: int, home: Path, env: dict[str, str], postgres, broker: str, folder: Path):
    """deploy/dagster.yaml on PostgreSQL, the warehouse a DuckLake, steps on Celery."""
    from mlops_assets_tests.deploy import services
    from mlops_assets_tests.live_server import free_port

    for database in (f"dagster_{k}", f"lake_{k}"):
        postgres.create_database(database)
    env.update(services.dagster_env(home, postgres, f"dagster_{k}", free_port()))
    env.update(
        MLOPS_LAKE_CATALOG=f"postgres:dbname=lake_{k} host={postgres.host} "
        f"port={postgres.port} user={postgres.user}",
        MLOPS_LAKE_DATA_PATH=f"{folder / 'lake'}/",
        MLOPS_CELERY_BROKER=broker,
    )
    deployment = services.start_dagster(home, env, cwd=folder)
    try:
        # through the workspace: by gRPC address the stop is recorded for another location
        workspace = ["-w", str(services.DEPLOY_DIR / "workspace.yaml")]
        dagster(["sensor", "stop", "automation", *workspace], env, folder)
        dagster(["instance", "concurrency", "set", "duckdb", "4"], env, folder)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def dagster(arguments: list[str], env: dict[str, str], cwd: Path) -> None:
    from mlops_assets_tests.deploy.services import VENV_BIN

    command = [str(VENV_BIN / "dagster"), *arguments]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{done.stdout}\n{done.stderr}")


def start_worker(name: str, env: dict[str, str], folder: Path, landing: Path):
    """A worker with its own Dagster home and data folder; the landing folder is shared, as a
    mount would be."""
    from mlops_assets_tests.deploy import services

    workdir = folder / name
    (workdir / "dagster_home").mkdir(parents=True)
    shutil.copy(services.DEPLOY_DIR / "dagster.yaml", workdir / "dagster_home")
    (workdir / "data").mkdir()
    (workdir / "data" / "landing").symlink_to(landing)
    own = {
        **env,
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "MLOPS_DATA_DIR": str(workdir / "data"),
    }
    return services.start_celery_worker(
        name, own, workdir, services.DEPLOY_DIR / "celery-worker.yaml"
    )


def instance_of(home: Path, env: dict[str, str]):
    """The profile's instance, read from this process (PostgreSQL's settings come from env)."""
    from dagster import DagsterInstance

    for key, value in env.items():
        if key.startswith("DAGSTER_PG_"):
            os.environ[key] = value
    return DagsterInstance.from_config(str(home))


def wait_for_runs(home: Path, env: dict[str, str], expected: int, timeout: float) -> list:
    """The landing sensor's runs once there are `expected` of them and all have ended."""
    deadline = time.monotonic() + timeout
    with instance_of(home, env) as instance:
        while time.monotonic() < deadline:
            runs = [r for r in instance.get_runs() if LANDING_TAG in r.tags]
            if len(runs) >= expected and all(r.status.value in TERMINAL for r in runs):
                return [(r, instance.get_run_stats(r.run_id)) for r in runs]
            time.sleep(1)
    raise TimeoutError(f"{expected} landing runs did not all end within {timeout} s")


def summarize(runs: list, dropped: float) -> dict:
    starts = [stats.start_time for _, stats in runs if stats.start_time]
    ends = [stats.end_time for _, stats in runs if stats.end_time]
    return {
        "runs": len(runs),
        "succeeded": sum(run.status.value == "SUCCESS" for run, _ in runs),
        "drop_to_done_s": max(ends) - dropped,
        "first_start_to_last_end_s": max(ends) - min(starts),
        "run_median_s": float(np.median([s.end_time - s.start_time for _, s in runs])),
    }


def partition_accounting(env: dict[str, str], names: list[str]) -> dict:
    """Per partition raw rows against validated + quarantined, read as a user would."""
    from mlops_assets.defs.resources import Warehouse

    warehouse = Warehouse(
        database=str(Path(env["MLOPS_DATA_DIR"]) / "warehouse.duckdb"),
        lake_catalog=env.get("MLOPS_LAKE_CATALOG"),
        lake_data_path=env.get("MLOPS_LAKE_DATA_PATH"),
    )
    exact, partitions = True, 0
    with warehouse.read_connection() as con:
        for name in names:
            counts = {}
            for table in ("raw", "validated", "quarantine"):
                query = f"SELECT _partition, count(*) FROM {name}.{table} GROUP BY ALL"
                counts[table] = dict(con.execute(query).fetchall())
            partitions += len(counts["raw"])
            exact &= all(
                rows == counts["validated"].get(p, 0) + counts["quarantine"].get(p, 0)
                for p, rows in counts["raw"].items()
            )
    return {"partitions": partitions, "exact": exact}


def data_path_on_lake(rows: int, postgres, root: Path) -> dict:
    """`raw` + `validated` of one abalone-shaped file: the DuckDB file, then a fresh DuckLake."""
    path = root / "abalone.csv"
    data_path.generate(path, rows)
    postgres.create_database("lake_data_path")
    lake = {
        **os.environ,
        "MLOPS_LAKE_CATALOG": f"postgres:dbname=lake_data_path host={postgres.host} "
        f"port={postgres.port} user={postgres.user}",
        "MLOPS_LAKE_DATA_PATH": f"{root / 'lake_data_path'}/",
    }
    result = {
        "rows": rows,
        "file": data_path.measure("ours", path),
        "lake": data_path.measure("ours", path, lake),
    }
    path.unlink()
    for subject in ("file", "lake"):
        r = result[subject]
        print(f"data path {subject:<4} {r['seconds']:6.2f} s (raw {r['raw_seconds']:.2f}, "
              f"validated {r['validated_seconds']:.2f})", flush=True)  # fmt: skip
    return result


def line(r: dict) -> str:
    return (
        f"{r['profile']:<9} runs {r['succeeded']}/{r['runs_expected']}  "
        f"drop->done {r['drop_to_done_s']:6.1f} s  first start->last end "
        f"{r['first_start_to_last_end_s']:6.1f} s  median run {r['run_median_s']:5.1f} s  "
        f"accounting exact: {r['accounting']['exact']} ({r['accounting']['partitions']} partitions)"
    )


def markdown(results: dict) -> str:
    profiles = results["profiles"]
    base = profiles[0]["drop_to_done_s"]
    lines = [
        "| profile | runs succeeded | files landed -> last partition validated, s "
        "| ratio to embedded | first run start -> last run end, s | median run, s "
        "| accounting exact |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in profiles:
        lines.append(
            f"| {r['profile']} | {r['succeeded']}/{r['runs_expected']} | {r['drop_to_done_s']:.1f} "
            f"| {r['drop_to_done_s'] / base:.2f}x | {r['first_start_to_last_end_s']:.1f} "
            f"| {r['run_median_s']:.1f} | {'yes' if r['accounting']['exact'] else '**no**'} |"
        )
    dp = results.get("data_path")
    if dp:
        lines += [
            "",
            f"Data path, one abalone-shaped file of {dp['rows']:,} rows (`raw` + `validated`, "
            "fresh process each):",
            "",
            "| warehouse | total, s | raw, s | validated, s | peak RSS, MB | ratio |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for subject, label in (
            ("file", "DuckDB file"),
            ("lake", "DuckLake (PostgreSQL catalog, folder)"),
        ):
            r = dp[subject]
            lines.append(
                f"| {label} | {r['seconds']:.2f} | {r['raw_seconds']:.2f} | "
                f"{r['validated_seconds']:.2f} | {r['peak_rss_mb']:.0f} | "
                f"{r['seconds'] / dp['file']['seconds']:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of each landed file")
    parser.add_argument("--profiles", default="embedded,celery-1,celery-2")
    parser.add_argument("--data-path-rows", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--smoke", action="store_true", help="1 x 2, embedded and celery-1")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.partitions, args.rows = 1, 2, 500
        args.profiles, args.data_path_rows = "embedded,celery-1", 20_000
    from mlops_assets_tests.deploy import services

    load_before = os.getloadavg()[0]
    postgres, stop_postgres = services.start_postgres()
    root = Path(tempfile.mkdtemp(prefix="mlops-scale-"))
    broker, redis = services.start_redis(root)
    try:
        profiles = [run_profile(p, args, postgres, broker, root) for p in args.profiles.split(",")]
        lake = (
            data_path_on_lake(args.data_path_rows, postgres, root) if args.data_path_rows else None
        )
    finally:
        redis.stop()
        stop_postgres()
        shutil.rmtree(root, ignore_errors=True)
    results = {
        "machine": machine_facts(PACKAGES),
        "plan": {k: getattr(args, k) for k in ("datasets", "partitions", "rows", "profiles")},
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "profiles": profiles,
        "data_path": lake,
    }
    extra = load_average_fact(results["load_average"])
    publish("scale", "bench.scale", results, markdown, not args.no_docs, extra)


if __name__ == "__main__":
    main()
