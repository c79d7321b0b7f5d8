"""The warehouse resource: dagster-duckdb's DuckDBResource with the project's memory limit."""

import subprocess
import sys

import pytest

from mlops_assets.defs.resources import Warehouse

OPEN_FOR_WRITING = (
    "import sys, duckdb; duckdb.connect(sys.argv[1]).execute('create table b (x int)')"
)


def test_connection_has_the_memory_limit_and_creates_the_folder(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "new" / "warehouse.duckdb"), memory_limit="256MB")
    with warehouse.get_connection() as con:
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert limit.replace(" ", "") in {"256.0MiB", "244.1MiB"}  # DuckDB reports MB in MiB
    assert (tmp_path / "new" / "warehouse.duckdb").is_file()


def test_a_failed_block_releases_the_file_for_other_processes(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    # pytest.raises keeps the traceback, and with it the frames holding the connection, alive
    with (
        pytest.raises(ValueError) as failure,
        Warehouse(database=str(path)).get_connection() as con,
    ):
        con.execute("create table a (x int)")
        raise ValueError("step failed")
    writer = subprocess.run(
        [sys.executable, "-c", OPEN_FOR_WRITING, str(path)], capture_output=True, text=True
    )
    assert writer.returncode == 0, writer.stderr
    assert failure.value.args == ("step failed",)
