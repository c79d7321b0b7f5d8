"""Start-up benchmark: from empty folders to a built model and to a working demo, today's
`main` (a git ref) against this working tree, side by side on the same machine.

    uv run python -m bench.startup                       # baseline c75d814, 3 rounds; docs block
    uv run python -m bench.startup --rounds 1 --no-docs  # a quick look
    uv run python -m bench.startup --smoke --no-docs     # this tree only, one round (CI)

Each subject is a project folder with its own virtualenv (the baseline: a git worktree of the
ref in a temp folder, `uv sync --locked` there, so it runs as that commit's `make setup` leaves
it). Per round and subject (alternating), from empty data dir, DAGSTER_HOME and MLflow store, with
downloads failing fast (a proxy that refuses, as offline):

- build: `mlops build iris` wall time, and the step times from the run's step statistics;
- demo: what the subject's `make demo` runs (its `setup` and `demo` recipes from its Makefile,
  on free ports) until the Dagster UI (`/server_info`) and `POST /models/iris/predict` both
  answer 200;
  then the demo's process group gets SIGTERM (SIGKILL after 60 s) and no process is left;
- phases: in a fresh process, importing `mlops_assets.build` (what `mlops build` imports), then
  loading the code location as the UI's code server does (`report.LOAD_CODE_LOCATION`), creating
  the MLflow store and the Dagster instance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.report import DOCS_FILE, facts_block, machine_facts, write_block, write_results
from bench.serving.servers import free_port

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "c75d814"
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DEMO_TIMEOUT_SECONDS = 300
PACKAGES = ["dagster", "mlflow", "scikit-learn", "litestar"]
# each phase in a fresh process of the subject's interpreter, on fresh folders (the environment)
PHASE_PROBE = """
import json, os, sys, time
clock = time.perf_counter
t = clock(); import mlops_assets.build; imported = clock() - t
t = clock(); LOAD_CODE_LOCATION; definitions = clock() - t
from mlops_assets.settings import load_settings
from mlops_assets.settings import MLFLOW_EXPERIMENT
from mlops_assets.lib.registry import prepare_tracking_store
settings = load_settings()
t = clock()
prepare_tracking_store(settings.tracking_uri, MLFLOW_EXPERIMENT, str(settings.artifacts_dir))
tracking = clock() - t
os.environ["DAGSTER_HOME"] = os.environ["PROBE_DAGSTER_HOME"]
from dagster import DagsterInstance
t = clock()
with DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
dagster = clock() - t
print(json.dumps({"import_s": imported, "definitions_s": definitions,
                  "tracking_store_s": tracking, "dagster_instance_s": dagster}))
""".replace("LOAD_CODE_LOCATION", report.LOAD_CODE_LOCATION)
STEP_PROBE = """
import json
from dagster import DagsterInstance
with DagsterInstance.get() as instance:
    run = instance.get_runs(limit=1)[0]
    stats = instance.get_run_step_stats(run.run_id)
print(json.dumps({s.step_key.split("__")[-1]: s.end_time - s.start_time
                  for s in stats if s.end_time}))
"""
STEPS = ["raw", "validated", "features", "candidates", "champion_model"]


@dataclass
class Subject:
    name: str  # "baseline" or "current"
    label: str  # what the tables say: the ref or "this tree"
    project: Path

    @property
    def python(self) -> str:
        return str(self.project / ".venv" / "bin" / "python")


def find_uv() -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), PROJECT / ".tools/bin/uv",
                      Path("/work/main/.tools/bin/uv")):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SystemExit("uv not found: set UV=/path/to/uv")


@contextmanager
def baseline_subject(ref: str, scratch: Path, uv: str, compile_bytecode: bool):
    """A git worktree of `ref` with its own virtualenv; removed afterwards."""
    folder = scratch / "baseline"
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(folder), ref],
                   check=True, capture_output=True)  # fmt: skip
    try:
        sync = [uv, "sync", "--locked"] + (["--compile-bytecode"] if compile_bytecode else [])
        subprocess.run(sync, cwd=folder, env=uv_environment(), check=True, capture_output=True)
        yield Subject("baseline", ref, folder)
    finally:
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(folder)],
                       capture_output=True)  # fmt: skip


def uv_environment() -> dict:
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
        env.pop(name, None)
    return env


def fresh_environment(subject: Subject, folder: Path) -> dict:
    """Empty data dir and DAGSTER_HOME (with the subject's dagster.yaml), no tracking server,
    and downloads refused at once, as offline."""
    folder.mkdir(parents=True)
    home = folder / "home"
    home.mkdir()
    shutil.copy(subject.project / "dagster.yaml", home / "dagster.yaml")
    env = uv_environment()
    env.pop("MLFLOW_TRACKING_URI", None)
    refused = "http://127.0.0.1:9"
    env.update({"MLOPS_DATA_DIR": str(folder / "data"), "DAGSTER_HOME": str(home),
                "http_proxy": refused, "https_proxy": refused, "HTTP_PROXY": refused,
                "HTTPS_PROXY": refused, "no_proxy": "127.0.0.1,localhost",
                "NO_PROXY": "127.0.0.1,localhost"})  # fmt: skip
    return env


def measure_build(subject: Subject, folder: Path) -> dict:
    env = fresh_environment(subject, folder)
    mlops = str(subject.project / ".venv" / "bin" / "mlops")
    started = time.perf_counter()
    done = subprocess.run([mlops, "build", "iris"], cwd=folder, env=env, capture_output=True,
                          text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{subject.name}: mlops build iris failed:\n{done.stderr[-3000:]}")
    steps = json.loads(probe(subject, STEP_PROBE, env, folder))
    return {"build_s": seconds, **{f"step_{name}_s": steps.get(name, 0.0) for name in STEPS}}


def measure_phases(subject: Subject, folder: Path) -> dict:
    env = fresh_environment(subject, folder)
    # absent while importing (the definitions would add partitions to it), then the fresh one
    env["PROBE_DAGSTER_HOME"], env["DAGSTER_HOME"] = env["DAGSTER_HOME"], str(folder / "absent")
    return json.loads(probe(subject, PHASE_PROBE, env, folder))


def probe(subject: Subject, code: str, env: dict, folder: Path) -> str:
    done = subprocess.run([subject.python, "-c", code], cwd=folder, env=env, capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{subject.name}: probe failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str, body: bytes | None = None) -> bool:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with DIRECT.open(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def measure_demo(subject: Subject, folder: Path, uv: str) -> dict:
    """`make demo`'s two commands, timed until the UI and a prediction answer; then stopped."""
    env = fresh_environment(subject, folder)
    ui_port, port = free_port(), free_port()
    command = make_demo_command(subject.project, uv, f"--ui-port {ui_port} --port {port}")
    log = (folder / "demo.log").open("w")
    started = time.perf_counter()
    demo = subprocess.Popen(["sh", "-c", command], cwd=subject.project, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    ui_url = f"http://127.0.0.1:{ui_port}/server_info"
    predict_url = f"http://127.0.0.1:{port}/models/iris/predict"
    seen: dict[str, float] = {}
    family: set[int] = set()
    try:
        while len(seen) < 3:
            elapsed = time.perf_counter() - started
            if elapsed > DEMO_TIMEOUT_SECONDS or demo.poll() is not None:
                raise RuntimeError(f"{subject.name}: demo not ready after {elapsed:.0f} s "
                                   f"(exit {demo.poll()}); see {folder / 'demo.log'}")  # fmt: skip
            family.update(descendants(demo.pid))
            for name, ready in (("ui_s", lambda: answers(ui_url)),
                                ("server_s", lambda: answers(f"http://127.0.0.1:{port}/health")),
                                ("predict_s", lambda: answers(predict_url, json.dumps(IRIS).encode()))):  # fmt: skip  # noqa: E501
                if name not in seen and ready():
                    seen[name] = time.perf_counter() - started
            time.sleep(0.1)
    finally:
        family.update(descendants(demo.pid))
        left = stop_group(demo, family)
        log.close()
    return {"demo_s": max(seen["ui_s"], seen["predict_s"]), **seen, "left_processes": left}


def make_demo_command(project: Path, uv: str, ports: str) -> str:
    """What `make demo` runs in `project` (the `setup` recipe, then the `demo` recipe), as one
    shell command with `$(UV)` resolved and the ports added to `mlops demo`: `make demo` itself
    would use ports 3000 and 8000, which the machine's other users may hold."""
    recipes, target = {}, None
    for line in (project / "Makefile").read_text().splitlines():
        if line.startswith("\t") and target:
            recipes[target].append(line.strip())
        elif ":" in line and not line.startswith((" ", "#", ".")) and "=" not in line:
            target = line.split(":", 1)[0].strip()
            recipes[target] = []
        elif not line.startswith("\t"):
            target = None
    steps = []
    for line in recipes["setup"] + recipes["demo"]:
        line = line.replace("$(UV)", uv)
        if "mlops demo" in line:
            line = line.replace("$(DEMO_ARGS)", "") + f" {ports}"
        steps.append(line)
    return " && ".join(steps)


def descendants(pid: int) -> list[int]:
    """Every live descendant; a thread's children are listed under that thread (uv and dg
    start theirs from worker threads)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            continue
    return found + [grand for child in found for grand in descendants(child)]


def stop_group(demo: subprocess.Popen, family: set[int]) -> int:
    """SIGTERM to the demo's group (it stops its services), then up to 60 s for every process
    of the demo to end; SIGKILL to the group of any still alive. Returns how many had to be."""
    with _suppress_gone():
        os.killpg(demo.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    demo.poll()
    survivors = _alive(family)
    for pid in survivors:
        with _suppress_gone():
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    with _suppress_gone():
        os.killpg(demo.pid, signal.SIGKILL)
    demo.wait()
    return len(survivors)


def _alive(family: set[int]) -> list[int]:
    return [pid for pid in family if Path(f"/proc/{pid}").exists() and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _suppress_gone():
    return suppress(ProcessLookupError, PermissionError)


def run_round(subject: Subject, folder: Path, uv: str, demo: bool) -> dict:
    row = {"subject": subject.name, **measure_build(subject, folder / "build")}
    row.update(measure_phases(subject, folder / "phases"))
    if demo:
        row.update(measure_demo(subject, folder / "demo", uv))
    print(json.dumps(row), flush=True)
    return row


def medians(rows: list[dict], subject: str) -> dict:
    mine = [row for row in rows if row["subject"] == subject]
    keys = [key for key in mine[0] if key.endswith("_s")]
    return {key: statistics.median(row[key] for row in mine) for key in keys}


LABELS = {
    "build_s": "`mlops build iris`, wall",
    "import_s": "import `mlops_assets.build`",
    "definitions_s": "then load the code location (`mlops_assets.definitions`)",
    "tracking_store_s": "create the MLflow store",
    "dagster_instance_s": "create the Dagster instance",
    **{f"step_{name}_s": f"step `{name}`" for name in STEPS},
    "demo_s": "demo: UI and prediction both answer",
    "server_s": "demo: server `/health` answers",
    "predict_s": "demo: `POST /models/iris/predict` answers",
    "ui_s": "demo: UI `/server_info` answers",
}


def markdown(subjects: list[Subject], summary: dict[str, dict]) -> str:
    head = "| seconds (median) | " + " | ".join(s.label for s in subjects)
    head += " | ratio |" if len(subjects) == 2 else " |"
    lines = [head, "|---|" + "---:|" * (len(subjects) + (len(subjects) == 2))]
    for key, label in LABELS.items():
        values = [summary[s.name].get(key) for s in subjects]
        if any(value is None for value in values):
            continue
        cells = [f"{value:.2f}" for value in values]
        if len(subjects) == 2:
            cells.append(f"{values[1] / values[0]:.2f}" if values[0] >= 0.01 else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of today's main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="this tree only, one round")
    parser.add_argument("--no-demo", action="store_true", help="build and phases only")
    parser.add_argument(
        "--baseline-bytecode",
        action="store_true",
        help="compile the baseline's bytecode too (`uv sync --compile-bytecode`)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    uv, rounds = find_uv(), 1 if args.smoke else args.rounds
    current = Subject("current", "this tree", PROJECT)
    subprocess.run([uv, "sync", "--locked", "--quiet"], cwd=PROJECT, env=uv_environment(),
                   check=True)  # fmt: skip
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch, _maybe_baseline(args, Path(scratch), uv) as base:
        subjects = [base, current] if base else [current]
        for index in range(rounds):
            order = subjects if index % 2 == 0 else subjects[::-1]
            for subject in order:
                folder = Path(scratch) / f"round{index}-{subject.name}"
                rows.append(run_round(subject, folder, uv, not args.no_demo))
        summary = {subject.name: medians(rows, subject.name) for subject in subjects}
    results = {
        "machine": machine_facts(PACKAGES),
        "plan": {
            "subjects": " vs ".join(s.label for s in subjects),
            "rounds": rounds,
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "unset"),
            "baseline bytecode compiled": args.baseline_bytecode,
        },  # fmt: skip
        "rows": rows,
        "medians": summary,
    }
    print(f"results: {write_results('startup', results)}")
    table = markdown(subjects, summary)
    print("\n" + table)
    left = sum(row.get("left_processes", 0) for row in rows)
    print(f"\nprocesses left behind by a demo and killed: {left}")
    if not args.no_docs:
        write_block("startup", facts_block("bench.startup", results) + "\n\n" + table)
        print(f"docs: {DOCS_FILE} (startup results block)")
    return 0


@contextmanager
def _maybe_baseline(args, scratch: Path, uv: str):
    if args.smoke:
        yield None
        return
    with baseline_subject(args.baseline, scratch, uv, args.baseline_bytecode) as subject:
        yield subject


if __name__ == "__main__":
    sys.exit(main())
