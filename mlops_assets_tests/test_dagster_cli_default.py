"""The plain Dagster CLI from the repo root, with no flags."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlops_assets import dagster_cli_default

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"


def unset_module_name(monkeypatch):
    # setenv first, so monkeypatch removes whatever apply() sets when the test ends
    monkeypatch.setenv("DAGSTER_MODULE_NAME", "")
    monkeypatch.delenv("DAGSTER_MODULE_NAME")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/dagster", "asset", "list"], "mlops_assets.definitions"),
        (["/venv/bin/dagster", "asset", "list", "-m", "other"], None),
        (["/venv/bin/dagster", "asset", "list", "--workspace=w.yaml"], None),
        (["/venv/bin/dagster", "dev"], None),
        (["/venv/bin/python", "asset"], None),
    ],
)
def test_only_targetless_asset_commands_get_the_default(monkeypatch, argv, expected):
    monkeypatch.chdir(REPO)
    unset_module_name(monkeypatch)
    monkeypatch.setattr("sys.argv", argv)
    dagster_cli_default.apply()
    assert os.environ.get("DAGSTER_MODULE_NAME") == expected


def test_not_outside_the_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    unset_module_name(monkeypatch)
    monkeypatch.setattr("sys.argv", ["dagster", "asset", "list"])
    dagster_cli_default.apply()
    assert "DAGSTER_MODULE_NAME" not in os.environ


@pytest.mark.slow
def test_dagster_asset_list_from_the_repo_root(settings):
    listed = subprocess.run(
        [str(DAGSTER), "asset", "list"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    assert {"iris/raw", "abalone/champion_model"} <= set(listed.stdout.split())


@pytest.mark.slow
def test_dagster_dev_serves_the_ui_from_the_repo_root(settings, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")  # as `mlops` sets it up
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    process = subprocess.Popen(
        [str(DAGSTER), "dev", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "dagster-dev.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert wait_for_asset_graph(port, deadline=time.monotonic() + 240)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as a person would; the daemon may be finishing a run, so force it after a while."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_for_asset_graph(port: int, deadline: float) -> bool:
    query = {"query": "{ assetNodes { assetKey { path } } }"}
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=10)
            nodes = answer.json()["data"]["assetNodes"]
            if ["iris", "champion_model"] in [node["assetKey"]["path"] for node in nodes]:
                return True
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(2)
    return False
