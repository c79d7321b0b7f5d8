"""The MLflow store survives a process killed while it creates (migrates) it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from mlflow.tracking import MlflowClient

from mlops_assets.lib.registry import prepare_tracking_store


def _start_prepare(database: Path, artifacts: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlops_assets.lib.registry"]
    command += [f"sqlite:///{database}", "exp", str(artifacts)]
    return subprocess.Popen(command, start_new_session=True)


def _is_migrating(store: Path) -> bool:
    """Past the initial tables: alembic has stamped a revision and is upgrading from it."""
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.1)) as db:
            return bool(db.execute("SELECT 1 FROM alembic_version").fetchall())
    except sqlite3.Error:
        return False


def _kill_once_migrations_begin(process: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 60
    while not any(_is_migrating(p) for p in folder.iterdir() if p.suffix != ".lock"):
        assert process.poll() is None, "the creation ended before any store file appeared"
        assert time.monotonic() < deadline, "no store file appeared"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_creation_killed_mid_migration_leaves_a_store_the_next_prepare_can_use(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "mlflow.db"
    process = _start_prepare(database, tmp_path / "artifacts")
    _kill_once_migrations_begin(process, folder)
    # a store under the real name is only ever a complete one (else `table ... already exists`)
    assert not database.exists(), "a half-migrated store took mlflow.db's name"

    experiment_id = prepare_tracking_store(f"sqlite:///{database}", "exp", str(tmp_path / "a"))

    client = MlflowClient(f"sqlite:///{database}")
    assert client.get_experiment(experiment_id).name == "exp"
    assert sorted(p.name for p in folder.iterdir()) == ["mlflow.db", "mlflow.db.lock"]
