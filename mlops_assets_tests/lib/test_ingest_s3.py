"""The raw record on an object store: a DuckLake whose data path is `s3://` (a local moto server,
a throwaway PostgreSQL catalog) keeps each landed file as an object under its sha256, and every
worker reads it from there."""

import hashlib
import subprocess
import sys

import duckdb
import pytest

from mlops_assets.lib import ingest
from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.quality import line_account
from mlops_assets.lib.validation import validate_partition
from mlops_assets.lib.warehouse import attach_lake, scalar
from mlops_assets_tests.deploy.services import PG_BIN, S3_DATA_PATH
from mlops_assets_tests.lib.test_landed_raw import BAD_VALUE, HEADER, LONG, ROWS, SHORT, write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PG_BIN / "initdb").is_file(), reason="PostgreSQL 15 is not installed"),
]
LANDED = "data/landed/abalone/"  # the key prefix of abalone's landed files in the bucket

READ_RAW = """
import sys
import duckdb
from mlops_assets.lib.warehouse import attach_lake

con = duckdb.connect()
attach_lake(con, sys.argv[1], sys.argv[2])
print(*con.execute("SELECT count(*), count(_error) FROM abalone.raw").fetchone())
"""


def landed_keys(bucket) -> list[str]:
    listing = bucket.list_objects_v2(Bucket="lake", Prefix=LANDED)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_a_partition_lands_in_the_bucket_and_every_line_is_accounted(
    s3_endpoint, s3_lake, builtin_specs, tmp_path, monkeypatch
):
    abalone = builtin_specs["abalone"]
    monkeypatch.setattr(ingest, "URL_STAGING", tmp_path / "staging")
    monkeypatch.chdir(tmp_path)
    # two malformed lines, a bad value, and an empty last line (no row: the account reads the file)
    source = write(
        tmp_path, "m.csv", [HEADER, ROWS[0], SHORT, ROWS[1], LONG, BAD_VALUE, ROWS[2], ""]
    )
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    con = duckdb.connect()
    attach_lake(con, s3_lake, S3_DATA_PATH)

    loaded = load_raw(con, abalone, source, "p1")

    key = f"{LANDED}{digest}.csv"
    assert landed_keys(s3_endpoint) == [key]
    assert s3_endpoint.get_object(Bucket="lake", Key=key)["Body"].read() == source.read_bytes()
    assert loaded.landed_file == f"s3://lake/{key}"
    assert con.execute("SELECT landed_file, sha256, bytes FROM abalone.raw_files").fetchall() == [
        (f"s3://lake/{key}", digest, source.stat().st_size)
    ]
    malformed = con.execute(
        "SELECT _row_number, _error <> '', _line FROM abalone.raw_malformed ORDER BY 1"
    ).fetchall()
    assert malformed == [(2, True, SHORT), (4, True, LONG)]
    summary = validate_partition(con, abalone, "p1")
    assert (summary.valid, summary.quarantined) == (3, 3)
    assert line_account(con, abalone, "p1") == (6, 6)
    assert not list((tmp_path / "staging").iterdir())  # the local copy went with the load
    assert not (tmp_path / "s3:").exists()

    reader = [sys.executable, "-c", READ_RAW, s3_lake, S3_DATA_PATH]
    out = subprocess.run(reader, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-2:] == ["6", "2"]  # another worker reads the record from the bucket

    replacement = write(tmp_path, "n.csv", [HEADER, ROWS[0], ROWS[1]])
    load_raw(con, abalone, replacement, "p1")
    new_digest = hashlib.sha256(replacement.read_bytes()).hexdigest()
    assert landed_keys(s3_endpoint) == [f"{LANDED}{new_digest}.csv"]  # the unused one is forgotten
    assert scalar(con, "SELECT count(*) FROM abalone.raw") == 2
    with pytest.raises(ValueError, match="no data rows"):  # a bad file changes nothing
        load_raw(con, abalone, write(tmp_path, "e.csv", [HEADER]), "p1")
    assert landed_keys(s3_endpoint) == [f"{LANDED}{new_digest}.csv"]
    assert scalar(con, "SELECT count(*) FROM abalone.raw") == 2
    con.close()
