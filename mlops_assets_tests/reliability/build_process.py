"""`mlops build` in its own process group against a temp data dir and Dagster home."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.settings import PROJECT_DIR


@dataclass
class BuildHome:
    """Temp folders one or more builds share, and the environment that points at them."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        data = self.root / "data"
        return {
            **os.environ,
            "MLOPS_DATA_DIR": str(data),
            "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
            "MLOPS_DATASETS_DIR": str(self.root / "specs"),
            "DAGSTER_HOME": str(self.root / "dagster_home"),
            "PYTHONUNBUFFERED": "1",
        }

    @classmethod
    def create(cls, root: Path, mlflow_template: Path | None = None) -> BuildHome:
        (root / "data").mkdir(parents=True)
        (root / "specs").mkdir()
        (root / "dagster_home").mkdir()
        shutil.copy(PROJECT_DIR / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
        if mlflow_template is not None:
            shutil.copy(mlflow_template, root / "data" / "mlflow.db")
        return cls(root)

    def start(self, *datasets: str, log: str = "build") -> subprocess.Popen:
        output = (self.root / f"{log}.log").open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "mlops_assets.cli", "build", *datasets],
            cwd=self.root,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self, log: str = "build") -> str:
        return (self.root / f"{log}.log").read_text()


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_group(process: subprocess.Popen, signum=signal.SIGKILL) -> None:
    os.killpg(process.pid, signum)
    process.wait(timeout=30)


def slot_holder_step(instance, pool: str = "duckdb") -> tuple[str, str] | None:
    """(run id, step key) holding the pool's slot, or None."""
    claimed = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
    return (claimed[0].run_id, claimed[0].step_key) if claimed else None
