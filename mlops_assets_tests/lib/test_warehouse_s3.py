"""The S3 secret a lake on `s3://` gets from the standard AWS environment variables."""

import duckdb

from mlops_assets.lib.warehouse import create_s3_secret


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
