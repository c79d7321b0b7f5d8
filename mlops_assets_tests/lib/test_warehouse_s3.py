"""A lake on `s3://`: the S3 secret from the standard AWS environment variables, and a DuckLake
whose catalog is a throwaway PostgreSQL and whose data files go to a local S3-compatible server."""

import subprocess
import sys

import duckdb
import pytest

from mlops_assets.lib.warehouse import attach_lake, create_s3_secret
from mlops_assets_tests.deploy.services import PG_BIN, S3_DATA_PATH


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


@pytest.mark.slow
@pytest.mark.skipif(not (PG_BIN / "initdb").is_file(), reason="PostgreSQL 15 is not installed")
def test_a_lake_on_s3_writes_parquet_to_the_bucket_and_another_process_reads_it(
    s3_endpoint, s3_lake
):
    con = duckdb.connect()
    attach_lake(con, s3_lake, S3_DATA_PATH)
    con.execute("CREATE SCHEMA shared")
    con.execute("CREATE TABLE shared.numbers AS SELECT range AS n FROM range(1000)")
    con.close()
    keys = [o["Key"] for o in s3_endpoint.list_objects_v2(Bucket="lake")["Contents"]]
    assert any(key.endswith(".parquet") for key in keys), keys
    reader = [sys.executable, "-c", READ_LAKE, s3_lake, S3_DATA_PATH]
    out = subprocess.run(reader, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "1000"
