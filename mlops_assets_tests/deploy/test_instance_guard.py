"""A production process never runs on the demo's instance without a word: Dagster's CLIs load a
`.env` of their working directory over the exported variables, and `mlops demo` writes
`DAGSTER_HOME=<repo>/.dagster_home` there (issue 19, section 4)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from mlops_assets.settings import PROJECT_DIR, production_instance_problem
from mlops_assets_tests.deploy import services
from mlops_assets_tests.live_server import free_port

LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@pytest.fixture
def repo_after_demo(tmp_path):
    """A repo root as `make demo` leaves it: the demo's home (SQLite) named in `.env`."""
    repo = tmp_path / "repo"
    home = repo / ".dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    (repo / ".env").write_text(f"DAGSTER_HOME={home}\n")
    return repo


@pytest.fixture
def production_home(tmp_path):
    home = tmp_path / "production_home"
    home.mkdir()
    shutil.copy(services.DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    return home


def test_only_a_production_shell_on_another_instance_is_refused(
    repo_after_demo, production_home, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(repo_after_demo / ".dagster_home"))
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    assert production_instance_problem(repo_after_demo) is None  # the demo itself
    monkeypatch.setenv("DAGSTER_PG_HOST", "db")
    problem = production_instance_problem(repo_after_demo)
    assert "does not store runs in PostgreSQL" in problem
    assert f"{repo_after_demo / '.env'} sets DAGSTER_HOME" in problem
    monkeypatch.setenv("DAGSTER_HOME", str(production_home))
    assert production_instance_problem(repo_after_demo) is None


@pytest.mark.slow
def test_production_processes_started_beside_the_demos_env_refuse_its_instance(
    postgres, repo_after_demo, production_home, tmp_path
):
    """The issue's scenario: the production variables exported, code server, daemon and
    webserver started from the repo root after `make demo`."""
    postgres.create_database("dagster_guard")
    env = services.dagster_env(production_home, postgres, "dagster_guard", free_port())
    env.update(MLOPS_DATA_DIR=str(tmp_path / "data"))
    deployment = services.start_dagster(production_home, env, cwd=repo_after_demo)
    try:
        answer = httpx.post(deployment.graphql_url, json={"query": LOCATIONS}, timeout=30)
        (entry,) = answer.json()["data"]["workspaceOrError"]["locationEntries"]
        loaded = entry["locationOrLoadError"]
        assert loaded["__typename"] == "PythonError"
        assert "DAGSTER_PG_HOST is set (the production profile)" in loaded["message"]
        assert f"{repo_after_demo / '.env'} sets DAGSTER_HOME" in loaded["message"]
    finally:
        deployment.stop()
