"""`dg` and `dagster dev` from the repo root with no flags, and `dg scaffold defs`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mlops_assets.lib.spec import load_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ["raw", "validated", "features", "candidates", "champion_model"]
DATASET_COMPONENT = "mlops_assets.components.DatasetComponent"


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def listed_asset_keys(cwd: Path, **env: str) -> set[str]:
    listed = run([str(BIN / "dg"), "list", "defs", "--json"], cwd, **env)
    assert listed.returncode == 0, listed.stderr
    return {asset["asset_key"] for asset in json.loads(listed.stdout)["assets"]}


def test_dg_checks_and_lists_every_data_set_from_the_repo_root(settings):
    checked = run([str(BIN / "dg"), "check", "defs"], REPO)
    assert checked.returncode == 0, checked.stderr
    keys = listed_asset_keys(REPO)
    assert {f"{ds}/{stage}" for ds in ("iris", "diabetes", "abalone") for stage in STAGES} <= keys


def project_copy(tmp_path: Path) -> Path:
    """The project's code and config in a temp folder, importable ahead of the installed copy."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "pyproject.toml", project)
    shutil.copytree(
        REPO / "mlops_assets",
        project / "mlops_assets",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return project


def test_dg_scaffold_defs_adds_a_data_set_every_command_sees(settings, tmp_path):
    project = project_copy(tmp_path)
    scaffold = run(
        [str(BIN / "dg"), "scaffold", "defs", DATASET_COMPONENT, "datasets/prices"], project
    )
    assert scaffold.returncode == 0, scaffold.stderr

    folder = project / "mlops_assets" / "defs" / "datasets" / "prices"
    declared = yaml.safe_load((folder / "defs.yaml").read_text())
    assert declared == {"type": DATASET_COMPONENT, "attributes": {"spec": "prices.yaml"}}
    template = (folder / "prices.yaml").read_text()
    assert template.count("\n#") >= 5  # a commented template to fill in
    assert load_spec(folder / "prices.yaml").name == "prices"

    imports_the_copy = {"PYTHONPATH": str(project)}
    assert {f"prices/{stage}" for stage in STAGES} <= listed_asset_keys(project, **imports_the_copy)
    datasets = run([str(BIN / "mlops"), "datasets"], project, **imports_the_copy)
    assert datasets.returncode == 0, datasets.stderr
    assert "prices" in {line.split()[0] for line in datasets.stdout.splitlines()[1:]}

    extra = tmp_path / "extra_specs"
    extra.mkdir()
    shutil.copy(folder / "prices.yaml", extra)
    replaced = run(
        [str(BIN / "dg"), "check", "defs"],
        project,
        MLOPS_DATASETS_DIR=str(extra),
        **imports_the_copy,
    )
    assert replaced.returncode == 0, replaced.stderr

    shutil.copytree(folder, folder.with_name("prices_again"))
    twice = run([str(BIN / "dg"), "check", "defs"], project, **imports_the_copy)
    assert twice.returncode != 0
    assert "'prices' is declared twice" in twice.stdout + twice.stderr


def test_dg_with_the_project_dagster_home_reports_no_usage(settings, tmp_path, monkeypatch):
    """dg decides Dagster telemetry from an exported DAGSTER_HOME only (README, Configuration);
    the pipeline turns MLflow's off wherever it is imported."""
    project, user_home = project_copy(tmp_path), tmp_path / "user"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
    environment = {"HOME": str(user_home), "DAGSTER_HOME": str(home)}
    # run() passes os.environ on; MLflow takes any of the last three for CI or a test: no telemetry
    unset = [
        "XDG_CONFIG_HOME",
        "MLFLOW_DISABLE_TELEMETRY",
        "PYTEST_CURRENT_TEST",
        "CI",
        "GITHUB_ACTIONS",
    ]
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    scaffold = run(
        [str(BIN / "dg"), "scaffold", "defs", DATASET_COMPONENT, "prices"], project, **environment
    )
    assert scaffold.returncode == 0, scaffold.stderr
    assert "Telemetry" not in scaffold.stderr
    written = sorted(str(path.relative_to(user_home)) for path in user_home.rglob("*"))
    assert not [path for path in written if ".dagster" in path or "mlflow" in path], written


@pytest.mark.parametrize("command", [["dagster", "dev"], ["dg", "dev"]], ids=" ".join)
def test_the_ui_serves_the_asset_graph_from_the_repo_root(settings, tmp_path, command):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")  # as `mlops` sets it up
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    process = subprocess.Popen(
        [str(BIN / command[0]), *command[1:], "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "ui.log").open("w"),
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
