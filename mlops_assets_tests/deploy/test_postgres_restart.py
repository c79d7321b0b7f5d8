"""The production instance (deploy/dagster.yaml) outlives a PostgreSQL restart: the webserver's
pooled connections are checked before use, so the first submission after the restart works."""

from __future__ import annotations

import shutil

import pytest
from dagster_graphql import DagsterGraphQLClient

from mlops_assets_tests.deploy import services
from mlops_assets_tests.live_server import free_port

DEFINITIONS = """
import dagster as dg

@dg.op
def noop():
    pass

@dg.job
def probe():
    noop()

defs = dg.Definitions(jobs=[probe])
"""


@pytest.fixture
def own_postgres():
    """A cluster of this test's own: restarting it must not disturb the session's services."""
    if not (services.PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL 15 is not installed ({services.PG_BIN}/initdb is absent)")
    server, stop = services.start_postgres()
    yield server
    stop()


def test_the_webserver_submits_runs_after_postgres_restarts(own_postgres, tmp_path):
    own_postgres.create_database("dagster")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(services.DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "probe.py").write_text(DEFINITIONS)
    env = services.dagster_env(home, own_postgres, "dagster", free_port())
    port = free_port()
    webserver = services.start_service(
        "dagster-webserver",
        [str(services.VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-f", str(tmp_path / "probe.py")],
        env, home, services.http_ok(f"http://127.0.0.1:{port}/server_info"),
    )  # fmt: skip
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        first = client.submit_job_execution("probe")
        own_postgres.restart()  # closes the webserver's pooled connections
        second = client.submit_job_execution("probe")  # raised "server closed the connection"
        assert second != first
        assert client.get_run_status(second).value == "QUEUED"  # no daemon: it waits in the queue
    finally:
        webserver.stop()
