"""Idle cost: what the Dagster daemon and its code server spend doing nothing, with the 3 built-in
data sets, with 30 and with 63 (27 and 60 iris-like specs more), a git ref against this working
tree.

    uv run python -m bench.idle_cost                      # baseline 0e21638, 150 s; docs block
    uv run python -m bench.idle_cost --duration 60 --no-docs
    uv run python -m bench.idle_cost --smoke --no-docs    # this tree, 5 extra, 20 s (CI)

Per subject and size, in a fresh DAGSTER_HOME (the subject's dagster.yaml) and data dir, with
`MLOPS_DATASETS_DIR` holding the extra iris-like specs (`iris.yaml` copied as `iris_001.yaml`...):

- load: wall time of a fresh process that loads the code location as the code server does
  (`report.LOAD_CODE_LOCATION`), median of `--loads` runs;
- idle: `dagster-daemon run -w workspace.yaml` for `--duration` seconds, no runs; CPU seconds
  (user + system, from /proc/<pid>/stat) of the daemon and every descendant (its code server),
  sampled every second so a process that ends still counts; `steady` is the CPU per minute over
  the last two thirds of the window, after the code location loaded.

The baseline is the ref's tree (`git archive`) run with this tree's virtualenv (the lock file is
the same), so only the project's code differs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from bench.report import (
    DOCS_FILE,
    LOAD_CODE_LOCATION,
    facts_block,
    machine_facts,
    write_block,
    write_results,
)

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "0e21638"  # main before retrain and monitoring lost their per-data-set jobs
PACKAGES = ["dagster", "dagster-graphql", "grpcio"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIZES = (0, 27, 60)  # extra data sets beside the 3 built-ins: 3, 30 and 63 data sets


@dataclass
class Subject:
    name: str  # "baseline" or "current"
    label: str  # what the tables say: the ref or "this tree"
    project: Path


def baseline_tree(ref: str, scratch: Path) -> Subject:
    folder = scratch / "baseline"
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(PROJECT), "archive", "--format=tar", ref],
                             check=True, capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        # a ref may hold a link out of the tree (main's `.venv` since 9c619c7): not code, left out
        kept = [m for m in tar.getmembers() if not (m.issym() and Path(m.linkname).is_absolute())]
        tar.extractall(folder, members=kept, filter="data")
    return Subject("baseline", ref, folder)


def extra_specs(folder: Path, count: int) -> Path:
    """`count` copies of the iris spec: `iris_001`, `iris_002`..."""
    from mlops_assets_tests.synthetic import iris_like_specs

    iris_like_specs(folder, [f"iris_{index:03d}" for index in range(1, count + 1)])
    return folder


def environment(subject: Subject, folder: Path, extra: int) -> dict:
    """A fresh home (the subject's dagster.yaml), data dir and spec folder; the subject's code
    first on the path."""
    home = folder / "home"
    home.mkdir(parents=True)
    shutil.copy(subject.project / "dagster.yaml", home / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_")}
    env.update({"DAGSTER_HOME": str(home), "MLOPS_DATA_DIR": str(folder / "data"),
                "MLOPS_DATASETS_DIR": str(extra_specs(folder / "specs", extra)),
                "PYTHONPATH": str(subject.project)})  # fmt: skip
    return env


def measure_load(subject: Subject, folder: Path, extra: int, runs: int) -> float:
    times = []
    for index in range(runs):
        env = environment(subject, folder / f"load{index}", extra)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", LOAD_CODE_LOCATION],
                       cwd=subject.project, env=env, check=True, capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def family(pid: int) -> list[int]:
    """The process and every live descendant (children are listed per thread)."""
    found = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in children.read_text().split():
                found += family(int(child))
        except OSError:
            continue
    return found


def start(command: list[str], subject: Subject, env: dict, log: Path) -> subprocess.Popen:
    binary = str(Path(sys.executable).with_name(command[0]))
    with log.open("w") as out:  # the child keeps its own copy of the file
        return subprocess.Popen([binary, *command[1:]], cwd=subject.project, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def start_services(subject: Subject, folder: Path, env: dict, launch: str) -> list:
    """`managed`: the daemon starts its own code server from workspace.yaml (and, as Dagster
    does for such a location, starts a fresh one every 60 s); `code-server`: a code server
    apart, which the daemon reaches over gRPC, as `dagster dev` and deploy/ run it."""
    if launch == "managed":
        return [start(["dagster-daemon", "run", "-w", "workspace.yaml"], subject, env,
                      folder / "daemon.log")]  # fmt: skip
    from mlops_assets_tests.live_server import free_port

    env = {**env, "MLOPS_CODE_SERVER_HOST": "127.0.0.1", "MLOPS_CODE_SERVER_PORT": str(free_port())}
    command = ["dagster", "code-server", "start", "-h", env["MLOPS_CODE_SERVER_HOST"],
               "-p", env["MLOPS_CODE_SERVER_PORT"], "-m", "mlops_assets.definitions"]  # fmt: skip
    server = start(command, subject, env, folder / "server.log")
    workspace = subject.project / "deploy" / "workspace.yaml"  # the one deploy/ runs
    daemon = start(["dagster-daemon", "run", "-w", str(workspace)], subject, env,
                   folder / "daemon.log")  # fmt: skip
    return [server, daemon]


def measure_idle(subject: Subject, folder: Path, extra: int, duration: float, launch: str) -> dict:
    env = environment(subject, folder / "daemon", extra)
    services = start_services(subject, folder, env, launch)
    latest: dict[int, float] = {}  # pid -> CPU seconds last seen
    started, steady_from, steady_base = time.monotonic(), duration / 3, None
    pids: set[int] = set()
    try:
        while (elapsed := time.monotonic() - started) < duration:
            if any(service.poll() is not None for service in services):
                raise RuntimeError(f"{subject.name}: a service exited; see {folder}/*.log")
            for pid in (pid for service in services for pid in family(service.pid)):
                pids.add(pid)
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    latest[pid] = seconds
            if steady_base is None and elapsed >= steady_from:
                steady_base, steady_start = sum(latest.values()), elapsed
            time.sleep(1)
        total = sum(latest.values())
        steady = (total - steady_base) / (elapsed - steady_start) * 60
    finally:
        for service in services:
            stop(service, pids)
    return {"idle_cpu_s": total, "steady_cpu_s_per_min": steady, "processes": len(pids)}


def stop(daemon: subprocess.Popen, pids: set[int]) -> None:
    """SIGTERM to the daemon's group, SIGKILL after 30 s to whatever of it is left."""
    try:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for pid in [daemon.pid, *pids]:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    daemon.wait()


def measure(subject: Subject, scratch: Path, extra: int, args) -> dict:
    folder = scratch / f"{subject.name}-{3 + extra}"
    row = {"subject": subject.name, "datasets": 3 + extra}
    row["load_s"] = measure_load(subject, folder, extra, args.loads)
    row.update(measure_idle(subject, folder, extra, args.duration, args.launch))
    print(row, flush=True)
    return row


LABELS = {
    "load_s": "load the code location, wall s (median)",
    "idle_cpu_s": "idle daemon + code server, CPU s over the window",
    "steady_cpu_s_per_min": "of which steady state, CPU s per minute",
}


def markdown(subjects: list[Subject], rows: list[dict], sizes: list[int]) -> str:
    """Per subject, a column per number of data sets, then the largest over the smallest."""
    counts = [3 + n for n in sizes]
    ratio = f"ratio {counts[-1]}/{counts[0]}"
    head = " | ".join(
        " | ".join(f"{s.label}: {c}" for c in counts) + f" | {ratio}" for s in subjects
    )
    lines = [f"| | {head} |", "|---|" + ("---:|" * (len(counts) + 1)) * len(subjects)]
    by_key = {(row["subject"], row["datasets"]): row for row in rows}
    for key, label in LABELS.items():
        cells = []
        for subject in subjects:
            values = [by_key[(subject.name, count)][key] for count in counts]
            cells += [f"{v:.2f}" for v in values]
            cells.append(f"{values[-1] / values[0]:.2f}x" if values[0] else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of today's main")
    parser.add_argument("--duration", type=float, default=150, help="idle seconds per daemon")
    parser.add_argument("--loads", type=int, default=3, help="timed loads per size")
    parser.add_argument("--extra", type=int, nargs="+", default=list(SIZES),
                        help="extra data sets beside the 3 built-ins, one daemon each")  # fmt: skip
    parser.add_argument("--only", choices=["baseline", "current"], help="one subject only")
    parser.add_argument("--launch", choices=["code-server", "managed"], default="code-server",
                        help="a code server apart (as dagster dev and deploy/ run it), or the "
                        "daemon's own from workspace.yaml (restarted every 60 s)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="this tree, 5 extra, 20 s, 1 load")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.only, args.extra, args.duration, args.loads = "current", [0, 5], 20, 1
    sizes = sorted(args.extra)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        subjects = []
        if args.only != "current":
            subjects.append(baseline_tree(args.baseline, Path(scratch)))
        if args.only != "baseline":
            subjects.append(Subject("current", "this tree", PROJECT))
        for subject in subjects:
            for extra in sizes:
                rows.append(measure(subject, Path(scratch), extra, args))
    results = {
        "machine": machine_facts(PACKAGES),
        "plan": {
            "subjects": " vs ".join(s.label for s in subjects),
            "launch": args.launch,
            "data sets": ", ".join(str(3 + n) for n in sizes),
            "idle seconds": args.duration,
            "loads": args.loads,
        },  # fmt: skip
        "rows": rows,
    }
    print(f"results: {write_results('idle_cost', results)}")
    table = markdown(subjects, rows, sizes)
    print("\n" + table)
    if not args.no_docs:
        block = f"idle_cost {args.launch}"
        write_block(block, facts_block("bench.idle_cost", results) + "\n\n" + table)
        print(f"docs: {DOCS_FILE} ({block} results block)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
