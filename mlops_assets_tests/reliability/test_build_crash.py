"""A build killed with SIGKILL blocks nothing: the next build repairs what it left and succeeds."""

import os
import signal
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from mlflow.tracking import MlflowClient

from mlops_assets.lib.registry import ENDED_BY_TAG
from mlops_assets.settings import MLFLOW_EXPERIMENT
from mlops_assets_tests.reliability.build_process import (
    BuildHome,
    kill_group,
    slot_holder_step,
    wait_for,
)
from mlops_assets_tests.reliability.synthetic_spec import write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path, mlflow_template, monkeypatch):
    home = BuildHome.create(tmp_path / "home", mlflow_template)
    write_dataset(home.root / "specs", "synth", rows=3000)
    write_dataset(home.root / "specs", "other", rows=500)
    for key in ("DAGSTER_HOME", "MLOPS_DATA_DIR", "MLFLOW_TRACKING_URI", "MLOPS_DATASETS_DIR"):
        monkeypatch.setenv(key, home.env[key])
    return home


@pytest.fixture
def instance(home):
    with DagsterInstance.get() as dagster_instance:
        yield dagster_instance


def mlflow_runs(home):
    client = MlflowClient(home.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_build_after_a_kill_during_training_repairs_and_succeeds(home, instance):
    crashed = home.start("synth", log="crashed")
    run_id, _ = wait_for(
        lambda: (
            (holder := slot_holder_step(instance))
            and holder[1] == "synth__candidates"
            and any(run.data.tags.get("mlflow.parentRunId") for run in mlflow_runs(home))
            and holder
        ),
        timeout=180,
        what="the candidates step to log a candidate",
        every=0.1,
    )
    kill_group(crashed)
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
    assert any(run.info.status == "RUNNING" for run in mlflow_runs(home))

    started = time.monotonic()
    second = home.start("synth", log="second")
    assert second.wait(timeout=300) == 0, home.output("second")
    assert time.monotonic() - started < 300
    out = home.output("second")
    assert f"repaired: Dagster run {run_id} (synth): the process executing this run" in out
    assert "synth: built" in out

    dead = instance.get_run_by_id(run_id)
    assert dead.status == DagsterRunStatus.FAILURE
    assert slot_holder_step(instance) is None
    runs = mlflow_runs(home)
    assert {run.info.status for run in runs} <= {"FINISHED", "KILLED"}
    orphaned = [
        run
        for run in runs
        if run.data.tags.get("dagster_run_id") == run_id
        or run.data.tags.get("mlflow.parentRunId")
        in {r.info.run_id for r in runs if r.data.tags.get("dagster_run_id") == run_id}
    ]
    killed = [run for run in orphaned if run.info.status == "KILLED"]
    assert killed, "the crashed run's parent MLflow run was left as it was"
    for run in killed:  # the parent and any candidate that was being logged
        assert run.data.tags["dagster_run_id"] == run_id
        assert run.data.tags[ENDED_BY_TAG] == f"orphaned: Dagster run {run_id} is FAILURE"


def test_a_build_waiting_for_the_pool_names_the_holder_and_stops_on_sigterm(home, instance):
    holder = home.start("synth", log="holder")
    holder_run, _ = wait_for(lambda: slot_holder_step(instance), 180, "the first build's slot")
    os.killpg(holder.pid, signal.SIGSTOP)  # alive, holding the slot
    try:
        waiting = home.start("other", log="waiting")
        wait_for(
            lambda: "waits for pool duckdb" in home.output("waiting"), 120, "the waiting message"
        )
        out = home.output("waiting")
        assert f"held by run {holder_run} (synth, STARTED, pid {holder.pid})" in out
        os.killpg(waiting.pid, signal.SIGTERM)
        stopped = time.monotonic()
        assert waiting.wait(timeout=15) == 143
        assert time.monotonic() - stopped < 10
        [canceled] = [r for r in instance.get_runs() if r.tags.get("mlops/dataset") == "other"]
        assert canceled.status == DagsterRunStatus.CANCELED
        assert "stopped by SIGTERM while waiting for pool duckdb" in home.output("waiting")
    finally:
        os.killpg(holder.pid, signal.SIGCONT)
    assert holder.wait(timeout=300) == 0, home.output("holder")
