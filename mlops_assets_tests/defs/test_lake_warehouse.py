"""The warehouse as a DuckLake: catalog in a throwaway PostgreSQL, data files in a folder. The
same assets and SQL as the embedded DuckDB file, switched by two environment variables."""

import itertools
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.build import build_dataset, failures_of
from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs.ingestion.partitions import files_partitions
from mlops_assets.defs.resources import resources_for, warehouse_for
from mlops_assets.lib.sources import fetch_source
from mlops_assets.lib.warehouse import scalar
from mlops_assets.settings import load_settings
from mlops_assets_tests.deploy.services import PG_BIN, start_postgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PG_BIN / "initdb").is_file(), reason="PostgreSQL 15 is not installed"),
]
LAKE_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def postgres():
    server, stop = start_postgres()
    yield server
    stop()


@pytest.fixture
def lake_settings(settings, postgres, tmp_path, monkeypatch):
    """The test's settings with the warehouse on a new DuckLake."""
    database = f"lake{next(LAKE_NUMBERS)}"
    postgres.create_database(database)
    catalog = f"postgres:dbname={database} host={postgres.host} port={postgres.port} user=postgres"
    monkeypatch.setenv("MLOPS_LAKE_CATALOG", catalog)
    monkeypatch.setenv("MLOPS_LAKE_DATA_PATH", f"{tmp_path / 'lake'}/")
    return load_settings()


def counts(settings, ds: str) -> list[int]:
    with warehouse_for(settings).get_connection() as con:
        return [scalar(con, f"SELECT count(*) FROM {ds}.{name}")
                for name in ("raw", "validated", "quarantine")]  # fmt: skip


def test_a_data_set_builds_on_the_lake_and_every_row_is_accounted(lake_settings, instance,
                                                                   builtin_specs):  # fmt: skip
    outcome = build_dataset(builtin_specs["iris"], lake_settings, instance)
    assert outcome.success, outcome.describe()
    raw, valid, quarantined = counts(lake_settings, "iris")
    assert raw == 150 == valid + quarantined
    assert not lake_settings.warehouse_path.exists()  # nothing went to the embedded file
    lake = Path(lake_settings.lake_data_path)
    assert list(lake.rglob("*.parquet"))
    assert len(list((lake / "landed" / "iris").iterdir())) == 1  # the raw record, shared too
    assert (lake_settings.models_dir / "iris" / "current.json").is_file()


APPEND_ROWS = """
import sys
import pandas as pd
from mlops_assets.defs.resources import warehouse_for
from mlops_assets.lib.warehouse import append_rows
from mlops_assets.settings import load_settings

warehouse = warehouse_for(load_settings())
for batch in range(10):
    frame = pd.DataFrame({"writer": [sys.argv[1]] * 5, "batch": [batch] * 5})
    with warehouse.get_connection() as con:
        append_rows(con, "shared", "history", frame, ddl="writer VARCHAR, batch INTEGER")
"""


def test_writers_in_separate_processes_append_to_one_table_at_once(lake_settings):
    """DuckLake retries conflicting appends itself. The table exists first: writers that create
    one table at once conflict, which a step meets as Dagster's retry (the test below)."""
    with warehouse_for(lake_settings).get_connection() as con:
        con.execute("CREATE SCHEMA shared; CREATE TABLE shared.history (writer VARCHAR, batch INT)")
    writers = [subprocess.Popen([sys.executable, "-c", APPEND_ROWS, name])
               for name in ("a", "b", "c")]  # fmt: skip
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0, 0]
    with warehouse_for(lake_settings).get_connection() as con:
        rows = con.execute("SELECT writer, count(*) FROM shared.history GROUP BY 1").fetchall()
    assert sorted(rows) == [("a", 50), ("b", 50), ("c", 50)]


def test_two_workers_build_two_data_sets_into_one_lake_at_once(lake_settings, tmp_path):
    """Two `mlops build` processes with nothing in common but the lake (own data folder, MLflow
    store and Dagster instance, as on two machines) write at the same time."""
    import os

    builds = []
    for ds in ("iris", "diabetes"):
        worker = tmp_path / f"worker-{ds}"
        env = {**os.environ, "MLOPS_DATA_DIR": str(worker / "data"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{worker / 'mlflow.db'}",
               "DAGSTER_HOME": str(worker / "home")}  # fmt: skip
        (worker / "home").mkdir(parents=True)
        log = (worker / "build.log").open("w")
        argv = [str(Path(sys.executable).with_name("mlops")), "build", ds]
        builds.append((subprocess.Popen(argv, env=env, cwd=worker, stdout=log, stderr=log), log))
    for process, log in builds:
        assert process.wait(timeout=900) == 0, Path(log.name).read_text()[-3000:]
    iris, diabetes = counts(lake_settings, "iris"), counts(lake_settings, "diabetes")
    assert iris[0] == 150 == iris[1] + iris[2]
    assert diabetes[0] == 442 == diabetes[1] + diabetes[2]


def test_a_step_whose_lake_commit_conflicts_runs_again(lake_settings):
    """Two writers create the same view at once (as the first loads into a new lake do): the
    second commit conflicts, and a step gets Dagster's retry instead of failing its run."""
    first, second = warehouse_for(lake_settings), warehouse_for(lake_settings)
    with first.get_connection() as con:
        con.execute("CREATE SCHEMA s")
    with (
        pytest.raises(dg.RetryRequested) as retry,
        first.get_connection() as one,
        second.get_connection() as two,
    ):
        for con in (one, two):
            con.execute("BEGIN")
            con.execute("CREATE OR REPLACE VIEW s.v AS SELECT 1 AS x")
        one.execute("COMMIT")
        two.execute("COMMIT")
    assert retry.value.max_retries >= 3
    with first.get_connection() as con:
        assert scalar(con, "SELECT x FROM s.v") == 1


def test_a_step_whose_commit_outruns_ducklakes_own_retries_runs_again(lake_settings):
    """Two writers append to one table at once: DuckLake retries the second commit itself, and
    when its retries run out (here none are allowed) the step gets Dagster's retry."""
    first, second = warehouse_for(lake_settings), warehouse_for(lake_settings)
    with first.get_connection() as con:
        con.execute("CREATE SCHEMA s; CREATE TABLE s.t (x INTEGER)")
    with (
        pytest.raises(dg.RetryRequested),
        first.get_connection() as one,
        second.get_connection() as two,
    ):
        two.execute("SET ducklake_max_retry_count = 0")
        for con in (one, two):
            con.execute("BEGIN")
            con.execute("INSERT INTO s.t VALUES (1)")
        one.execute("COMMIT")
        two.execute("COMMIT")
    with first.get_connection() as con:
        assert scalar(con, "SELECT count(*) FROM s.t") == 1  # the failed commit wrote nothing


def test_raw_and_validated_materialize_on_a_lake_on_s3(
    settings, s3_endpoint, s3_lake, instance, builtin_specs
):
    spec, name = builtin_specs["iris"], "new.csv"
    lake_settings = load_settings()  # with the MLOPS_LAKE_* of `s3_lake`
    folder = lake_settings.landing_dir / spec.name
    folder.mkdir(parents=True)
    source = fetch_source(spec, lake_settings.sources_dir).read_text()  # 150 rows
    (folder / name).write_text(source.rstrip("\n") + "\n5.0,3.0\n")  # and a malformed line
    instance.add_dynamic_partitions(files_partitions(spec).name, [name])
    result = dg.materialize(
        dataset_assets(spec),
        selection=[dg.AssetKey(["iris", "raw"]), dg.AssetKey(["iris", "validated"])],
        partition_key=name,
        resources=resources_for(lake_settings),
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, failures_of(result)
    listing = s3_endpoint.list_objects_v2(Bucket="lake", Prefix="data/landed/iris/")
    assert [o["Key"].endswith(".csv") for o in listing["Contents"]] == [True]
    assert counts(lake_settings, "iris") == [151, 150, 1]  # the short line quarantined
    assert not lake_settings.warehouse_path.exists()
