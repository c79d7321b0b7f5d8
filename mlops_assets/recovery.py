"""Repair what a crashed `mlops build` leaves behind, before the next build starts.

A build killed with SIGKILL never ends its Dagster run: the run stays STARTED and keeps its slot
in the `duckdb` pool, so every later run waits for it forever. Its MLflow runs stay RUNNING.
Each run records the pid (and start time) of the process executing it; a run whose process is
gone is reported failed, its pool slots are freed and its MLflow runs are ended KILLED.

Why not Dagster's own mechanisms: `mlops build` executes its runs in its own process
(`materialize()`), so no daemon watches them, and `dg launch` runs in-process the same way.
Where the daemon does run (`dagster dev`, `make demo`), `run_monitoring` in dagster.yaml frees the
pool slots of ended runs and fails runs stuck starting or canceling, but it cannot tell that a
STARTED run's process died: that needs a run launcher that checks its workers, and the default
launcher does not (`supports_check_run_worker_health` is False). Submitting builds to the run
queue instead would make every build wait for a daemon. Dagster has no call that frees a run's
slots other than the event log storage's, hence `free_concurrency_slots_for_run` below.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from mlflow.tracking import MlflowClient

from mlops_assets.lib import registry
from mlops_assets.settings import MLFLOW_EXPERIMENT
from mlops_contract.bundle import process_alive

PID_TAG = "mlops/pid"
HOST_TAG = "mlops/host"
PROCESS_START_TAG = "mlops/process_start"  # tells a reused pid from the original process
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a run, for the next build to check."""
    pid = os.getpid()
    return {
        PID_TAG: str(pid),
        HOST_TAG: socket.gethostname(),
        PROCESS_START_TAG: process_start(pid) or "",
    }


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def process_is_gone(tags) -> bool:
    """True when the tags name a process of this machine that no longer runs."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False  # not ours to judge: another machine's, or launched by the daemon
    pid = int(tags[PID_TAG])
    if not process_alive(pid):
        return True
    recorded = tags.get(PROCESS_START_TAG)
    return bool(recorded) and process_start(pid) not in (None, recorded)


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Report runs whose process is gone as failed and free their pool slots."""
    lines = []
    for run in instance.get_runs(RunsFilter(statuses=UNFINISHED)):
        if not process_is_gone(run.tags):
            continue
        reason = (
            f"the process executing this run (pid {run.tags[PID_TAG]}) is gone: killed or "
            "crashed; marked failed by the next mlops build"
        )
        instance.report_run_failed(run, message=reason)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        lines.append(f"Dagster run {run.run_id} ({run.tags.get('mlops/dataset')}): {reason}")
    return lines + free_slots_of_finished_runs(instance)


def free_slots_of_finished_runs(instance: DagsterInstance) -> list[str]:
    """Pool slots still held by runs that are over (e.g. marked failed in the UI)."""
    holders = instance.event_log_storage.get_concurrency_run_ids()
    if not holders:
        return []
    over = instance.get_runs(RunsFilter(run_ids=list(holders), statuses=FINISHED))
    for run in over:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return [f"freed the pool slots of run {run.run_id} ({run.status.value})" for run in over]


def end_orphaned_mlflow_runs(instance: DagsterInstance, tracking_uri: str) -> list[str]:
    def status_of(run_id: str) -> str | None:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run else None

    return registry.end_orphaned_runs(MlflowClient(tracking_uri), MLFLOW_EXPERIMENT, status_of)


def recover(instance: DagsterInstance, tracking_uri: str) -> list[str]:
    """Everything the crashed builds left, repaired; one line per repair."""
    return fail_dead_runs(instance) + end_orphaned_mlflow_runs(instance, tracking_uri)
