"""The scale benchmark at smoke size (1 data set x 2 landed files, embedded and one Celery
worker, a 20,000-row data path on the file and on a DuckLake), so it cannot rot."""

import shutil
from pathlib import Path

import pytest

from mlops_assets_tests.bench.test_idle_cost_smoke import table_rows
from mlops_assets_tests.deploy.services import PG_BIN


@pytest.mark.slow
def test_every_landed_partition_is_validated_on_each_profile(smoke_run):
    if shutil.which("redis-server") is None or not Path(PG_BIN / "initdb").is_file():
        pytest.skip("needs redis-server and PostgreSQL 15 (.ci/run installs them)")
    result = smoke_run("bench.scale", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    for profile in ("embedded", "celery-1"):
        succeeded, *_, exact = rows[profile]
        assert (succeeded, exact) == ("2/2", "yes"), rows[profile]
    assert {"DuckDB file", "DuckLake (PostgreSQL catalog, folder)"} <= set(rows)
