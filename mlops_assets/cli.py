"""`mlops`: build data sets through Dagster, list them, serve their champions, run the demo."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from mlops_assets.settings import (
    MLFLOW_EXPERIMENT,
    PROJECT_DIR,
    Settings,
    ensure_dagster_home,
    instance_config_warnings,
    load_settings,
    sqlite_path,
    write_dotenv,
)

DAGSTER_UI_PORT = 3000
SERVER_PORT = 8000


def _specs(settings: Settings):
    from mlops_assets.components.project import project_specs

    return project_specs(settings)


def command_build(args: argparse.Namespace) -> int:
    settings = load_settings()
    store_creation = _start_tracking_store_creation(settings)  # overlaps the imports below
    with _long_lived_objects():
        from mlops_assets.build import build_dataset
        from mlops_assets.lib.sources import SourceUnavailable

        try:
            specs = _specs(settings)
        except Exception:
            _wait_for(store_creation)
            raise
        unknown = sorted(set(args.datasets) - set(specs))
        if unknown:
            print(f"unknown data set(s): {unknown}; known: {sorted(specs)}", file=sys.stderr)
            _wait_for(store_creation)
            return 2
        instance = _prepared_instance(settings, store_creation)
    names = args.datasets or sorted(specs)
    outcomes, skipped = [], []
    with instance:
        for name in names:
            print(f"==> building {name}", flush=True)
            try:
                outcomes.append(build_dataset(specs[name], settings, instance))
            except SourceUnavailable as exc:
                skipped.append(str(exc))
                print(f"skipped: {exc}", file=sys.stderr, flush=True)
            if outcomes and outcomes[-1].interrupted:
                print("interrupted: not building the remaining data sets", file=sys.stderr)
                break
    print("\nsummary:")
    for outcome in outcomes:
        print(f"  {outcome.describe()}")
    for reason in skipped:
        print(f"  skipped {reason}")
    failed = [o for o in outcomes if not o.success]
    # named data sets must all build; with no names, skipping unreachable sources is expected
    return 1 if failed or (args.datasets and skipped) or not outcomes else 0


def _wait_for(store_creation: subprocess.Popen | None) -> None:
    if store_creation is not None:
        store_creation.wait()  # stopped midway, it would leave a half-migrated store


@contextlib.contextmanager
def _long_lived_objects():
    """No garbage collection while the block creates what the process keeps to its end (the
    imported libraries, the code location); then those objects are left out of later
    collections: each full collection would walk them again, a quarter of a second apiece."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _start_tracking_store_creation(settings: Settings) -> subprocess.Popen | None:
    """A new SQLite tracking store created in a child while this process imports the pipeline:
    MLflow's migrations take about a second, which then runs on another core. None when the
    store exists (or is not SQLite): nothing to gain."""
    database = sqlite_path(settings.tracking_uri)
    if database is None or database.exists():
        return None
    arguments = [settings.tracking_uri, MLFLOW_EXPERIMENT, str(settings.artifacts_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.lib.registry", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _prepared_instance(settings: Settings, store_creation: subprocess.Popen | None = None):
    """The Dagster instance, with the MLflow store ready and what crashed builds left repaired.

    Under a lock in DAGSTER_HOME: builds started together would otherwise both create the
    stores, or both repair the same dead run.
    """
    from dagster import DagsterInstance

    from mlops_assets.lib.locks import exclusive_lock
    from mlops_assets.lib.registry import prepare_tracking_store
    from mlops_assets.recovery import recover

    with exclusive_lock(ensure_dagster_home() / ".mlops-build.lock"):
        instance = DagsterInstance.get()
        if store_creation is not None:
            store_creation.wait()  # then the call below finds the store current (or, if the
            # child failed, creates it here and raises the real error)
        prepare_tracking_store(
            settings.tracking_uri, MLFLOW_EXPERIMENT, str(settings.artifacts_dir)
        )
        for line in recover(instance, settings.tracking_uri):
            print(f"repaired: {line}", flush=True)
    return instance


def command_datasets(args: argparse.Namespace) -> int:
    from mlops_assets.lib.sources import source_of, source_status
    from mlops_contract.bundle import BundleError, read_manifest, read_pointer

    settings = load_settings()
    rows = [("NAME", "TASK", "TARGET", "SOURCE", "SOURCE STATUS", "CHAMPION")]
    for name, spec in sorted(_specs(settings).items()):
        dataset_dir = settings.models_dir / name
        try:
            pointer = read_pointer(dataset_dir)
            champion = "none yet"
            if pointer:
                manifest = read_manifest(dataset_dir, pointer)[1]
                metric = f"test_{manifest['selection_metric']}"
                champion = f"v{manifest['version']} ({metric}={manifest['metrics'][metric]:.3f})"
        except BundleError as exc:
            champion = f"broken bundle: {exc}"
        status = source_status(spec, settings.sources_dir)
        rows.append((name, spec.task, spec.target, source_of(spec), status, champion))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)))
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from serving.server import run

    run(host=args.host, port=args.port, workers=args.workers)
    return 0


def command_traffic(args: argparse.Namespace) -> int:
    import duckdb

    from mlops_assets.defs.resources import warehouse_for
    from mlops_assets.lib import traffic

    settings = load_settings()
    spec = _specs(settings).get(args.dataset)
    if spec is None:
        print(f"unknown data set {args.dataset!r}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:
        shifts = traffic.parse_shifts(args.shift, spec)
        with warehouse_for(settings).read_connection() as con:
            sample = traffic.sample_records(con, spec, args.rows, shifts, seed)
    except (ValueError, duckdb.Error) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.seed is None:
        print(f"seed {seed} (--seed {seed} sends the same rows again)")
    labels = None
    if args.labels:
        labels = traffic.wrong_labels(sample.actuals, args.label_error_rate, seed)
    delivery = traffic.deliver(args.url, spec.name, sample.records, args.batch, labels)
    print(f"sent {spec.name} to {args.url}: {delivery.describe()}")
    if sample.clipped:
        print(f"{sample.clipped} shifted value(s) were clipped to the spec's min/max")
    sent = set(delivery.requests) | set(delivery.labels)
    return 0 if sent == {200} else 1


def command_demo(args: argparse.Namespace) -> int:
    from mlops_assets import demo
    from mlops_assets.run_report import RunReport

    settings, home = load_settings(), ensure_dagster_home()
    logs = settings.data_dir / "logs"  # not DAGSTER_HOME/logs: Dagster empties that folder
    build = None
    if not args.skip_build:
        command = [sys.executable, "-m", "mlops_assets.cli", "build"]
        build = demo.Build(command, logs / "build.log", keep_going=args.keep_going)
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLOPS_DATA_DIR": str(settings.data_dir),  # the UI runs in DAGSTER_HOME, not here
        "PYTHONUNBUFFERED": "1",
    }
    services = [
        demo.Service(
            "Dagster UI",
            _dagster_dev_command(args.ui_port),
            f"http://127.0.0.1:{args.ui_port}",
            f"http://127.0.0.1:{args.ui_port}/server_info",
            logs / "dagster.log",
            # run where the instance's dagster.yaml is: from the repo root, dagster dev warns
            # that the dagster.yaml there is not used (it is, through the link in DAGSTER_HOME)
            cwd=home,
            uses_instance=True,
        ),
        demo.Service(
            "Prediction server",
            [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(args.port)],
            f"http://127.0.0.1:{args.port}",
            f"http://127.0.0.1:{args.port}/health",
            logs / "serving.log",
            note="  (API docs: /docs)",
        ),
    ]
    return demo.run_until_interrupted(services, environment, RunReport(demo.say), build)


def _dagster_dev_command(port: int) -> list[str]:
    # `dg dev` with a target runs what `dagster dev` runs, without its "superseded" warning
    workspace = PROJECT_DIR / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.is_file() else ["-m", "mlops_assets.definitions"]
    dg = Path(sys.executable).with_name("dg")
    return [str(dg), "dev", *target, "--host", "127.0.0.1", "--port", str(port)]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mlops", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="materialize every asset of the named data sets")
    build.add_argument("datasets", nargs="*", help="data set names (default: all reachable)")
    build.set_defaults(handler=command_build)
    datasets = commands.add_parser("datasets", help="list data set specs, sources and champions")
    datasets.set_defaults(handler=command_datasets)
    serve = commands.add_parser("serve", help="serve every champion over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=SERVER_PORT)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=command_serve)
    traffic = commands.add_parser("traffic", help="send realistic requests, optionally shifted")
    traffic.add_argument("dataset")
    traffic.add_argument("--rows", type=int, default=1000)
    traffic.add_argument("--url", default=f"http://127.0.0.1:{SERVER_PORT}")
    traffic.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="FEATURE=FACTOR",
        help="multiply a numeric input (API field name) by FACTOR; repeatable",
    )
    traffic.add_argument("--batch", type=int, default=50, help="records per request")
    traffic.add_argument(
        "--seed", type=int, help="repeat a sample (default: a new one each run, its seed printed)"
    )
    traffic.add_argument(
        "--labels",
        action="store_true",
        help="send each sampled row's true target back as feedback (POST /models/<ds>/feedback)",
    )
    traffic.add_argument(
        "--label-error-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="with --labels: this share of the labels is wrong (another value seen)",
    )
    traffic.set_defaults(handler=command_traffic)
    demo = commands.add_parser("demo", help="build, then run the Dagster UI and the server")
    demo.add_argument("--ui-port", type=int, default=DAGSTER_UI_PORT)
    demo.add_argument("--port", type=int, default=SERVER_PORT)
    demo.add_argument("--keep-going", action="store_true", help="start even if a build failed")
    demo.add_argument(
        "--skip-build", action="store_true", help="start the UI and the server on what is built"
    )
    demo.set_defaults(handler=command_demo)
    return root


def _quiet_mlflow() -> None:
    """MLflow's per-model chatter that is not the user's business (three lines per data set).

    Every logged model names its requirements explicitly (lib/registry.py), so MLflow's uv
    project detection only copies uv.lock into each model and logs "Detected uv project"; and
    the conda.yaml it writes beside the model (never used here) wants pip's version, which a uv
    virtualenv does not have: "Failed to resolve installed pip version".
    """
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
    logging.getLogger("mlflow.utils.environment").addFilter(
        lambda record: "Failed to resolve installed pip version" not in record.getMessage()
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    _quiet_mlflow()
    if args.command in ("build", "datasets", "demo"):
        # at the repo root with the default Dagster home: record it for the plain `dagster` CLI
        if "DAGSTER_HOME" not in os.environ and Path("dagster.yaml").is_file():
            write_dotenv(Path.cwd())
        for warning in instance_config_warnings(ensure_dagster_home()):
            print(f"warning: {warning}", file=sys.stderr)
    try:
        return args.handler(args)
    except ValueError as exc:
        from mlops_assets.lib.spec import SpecError  # loaded already if it was raised

        if not isinstance(exc, SpecError):
            raise
        print(f"error: {exc}", file=sys.stderr)  # names the file and the field: no traceback
        return 2


def run() -> NoReturn:
    """The `mlops` command: `main`, then the process ends without interpreter finalization.

    Finalization would walk the whole heap (Dagster, MLflow, scikit-learn, ...) in several full
    collections, over a second after the summary, and the objects frozen out of the collector
    above outlive it, so DuckDB's nanobind bindings print ~30 lines of `leaked instance`. Every
    store is closed by the time `main` returns; the output is flushed here.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
