"""A lake on `s3://`: the S3 secret from the standard AWS environment variables, and a DuckLake
whose catalog is a throwaway PostgreSQL and whose data files go to a local S3-compatible server."""

import subprocess
import sys

import boto3
import duckdb
import pytest
from moto.server import ThreadedMotoServer

from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.spec import load_spec
from mlops_assets.lib.warehouse import attach_lake, create_s3_secret
from mlops_assets.settings import builtin_spec_path
from mlops_assets_tests.deploy.services import PG_BIN, start_postgres


def test_s3_secret_is_built_from_the_aws_environment():
    con = duckdb.connect()
    env = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}  # fmt: skip
    create_s3_secret(con, env)
    (secret,) = con.execute(
        "SELECT secret_string FROM duckdb_secrets() WHERE name = 'lake_s3'"
    ).fetchone()
    assert "key_id=key" in secret
    assert "region=eu-west-1" in secret
    assert "endpoint=127.0.0.1:9000" in secret
    assert "use_ssl=false" in secret
    assert "url_style=path" in secret
    assert "secret=secret" not in secret  # DuckDB redacts the secret key


READ_LAKE = """
import sys
import duckdb
from mlops_assets.lib.warehouse import attach_lake, scalar

con = duckdb.connect()
attach_lake(con, sys.argv[1], sys.argv[2])
print(scalar(con, "SELECT count(*) FROM shared.numbers"))
"""


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A local S3-compatible server (moto) with an empty bucket `lake`; nothing leaves the host."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    bucket.create_bucket(Bucket="lake")
    yield bucket
    server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not (PG_BIN / "initdb").is_file(), reason="PostgreSQL 15 is not installed")
def test_a_lake_on_s3_writes_parquet_to_the_bucket_and_another_process_reads_it(
    s3_endpoint, tmp_path, monkeypatch
):
    postgres, stop = start_postgres()
    try:
        postgres.create_database("lake")
        catalog = f"postgres:dbname=lake host={postgres.host} port={postgres.port} user=postgres"
        con = duckdb.connect()
        attach_lake(con, catalog, "s3://lake/data/")
        con.execute("CREATE SCHEMA shared")
        con.execute("CREATE TABLE shared.numbers AS SELECT range AS n FROM range(1000)")
        con.close()
        keys = [o["Key"] for o in s3_endpoint.list_objects_v2(Bucket="lake")["Contents"]]
        assert any(key.endswith(".parquet") for key in keys), keys
        reader = [sys.executable, "-c", READ_LAKE, catalog, "s3://lake/data/"]
        out = subprocess.run(reader, capture_output=True, text=True, timeout=120, check=True)
        assert out.stdout.split()[-1] == "1000"
        assert_loading_a_file_stops_with_a_clear_error(catalog, tmp_path, monkeypatch)
    finally:
        stop()


def assert_loading_a_file_stops_with_a_clear_error(catalog: str, folder, monkeypatch) -> None:
    """The raw record is not kept on an object store yet: a load says so and writes nothing
    locally (no folder named `s3:` where it runs)."""
    monkeypatch.chdir(folder)
    source = folder / "iris.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n"
                      "5.1,3.5,1.4,0.2,setosa\n")  # fmt: skip
    con = duckdb.connect()
    attach_lake(con, catalog, "s3://lake/data/")
    with pytest.raises(RuntimeError, match="raw record cannot be kept on s3://lake/data/"):
        load_raw(con, load_spec(builtin_spec_path("iris")), source, "iris.csv")
    con.close()
    assert not (folder / "s3:").exists()
