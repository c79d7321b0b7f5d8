"""Small DuckDB helpers shared by every table the pipeline writes, and the DuckLake attach."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def table(dataset: str, name: str) -> str:
    return f"{quote(dataset)}.{quote(name)}"


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """The single value a query returns (fetching all, so the connection is free again)."""
    return con.execute(sql, params or []).fetchall()[0][0]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All of the block's writes or none of them."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_exists(con: duckdb.DuckDBPyConnection, dataset: str, name: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    return bool(scalar(con, sql, [dataset, name]))


def replace_table(con: duckdb.DuckDBPyConnection, dataset: str, name: str, frame) -> None:
    """Replace a whole table with a pandas frame (small tables: features, candidates)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(dataset)}")
    con.register("_replacement", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table(dataset, name)} AS SELECT * FROM _replacement")
    finally:
        con.unregister("_replacement")


def append_rows(
    con: duckdb.DuckDBPyConnection, dataset: str, name: str, frame, ddl: str | None = None
) -> None:
    """Append a pandas frame to a history table, creating it first (from `ddl`, or else from
    the frame's columns)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(dataset)}")
    con.register("_rows", frame)
    try:
        target = table(dataset, name)
        if ddl:
            con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({ddl})")
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM _rows LIMIT 0")
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


# The extensions a DuckLake warehouse needs, as the PyPI wheels install them; DuckDB loads the
# file by path, so nothing is downloaded (`INSTALL` would fetch from the internet).
LAKE_EXTENSIONS = {"ducklake": "duckdb_extension_ducklake",
                   "postgres_scanner": "duckdb_extension_postgres_scanner"}  # fmt: skip
LAKE_ALIAS = "warehouse"  # the name the embedded file has, so SQL never names the catalog
LAKE_INIT_ATTEMPTS = 5


def extension_file(name: str, package: str) -> Path:
    """The extension's file for the running DuckDB, from its wheel."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise RuntimeError(f"the DuckLake warehouse needs the {package} wheel "
                           "(installed by `uv sync`)") from None  # fmt: skip
    path = Path(module.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
    path = path / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{package} has no extension for DuckDB {duckdb.__version__} "
                           f"({path} is absent): install the matching wheel")  # fmt: skip
    return path


# S3 settings read from the environment, as DuckDB's secret names them
S3_SECRET_ENV = {"KEY_ID": "AWS_ACCESS_KEY_ID", "SECRET": "AWS_SECRET_ACCESS_KEY",
                 "SESSION_TOKEN": "AWS_SESSION_TOKEN", "REGION": "AWS_REGION"}  # fmt: skip


def create_s3_secret(con: duckdb.DuckDBPyConnection, env) -> None:
    """Load httpfs from its wheel and give the connection an S3 secret from the AWS_* variables;
    AWS_ENDPOINT_URL (e.g. `http://minio:9000`) points it at an S3-compatible store."""
    con.execute(f"LOAD {literal(str(extension_file('httpfs', 'duckdb_extension_httpfs')))}")
    options = [f"{key} {literal(env[var])}" for key, var in S3_SECRET_ENV.items() if env.get(var)]
    endpoint = env.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options += [f"ENDPOINT {literal(host.rstrip('/'))}", "URL_STYLE 'path'",
                    f"USE_SSL {'false' if scheme == 'http' else 'true'}"]  # fmt: skip
    con.execute(f"CREATE OR REPLACE SECRET lake_s3 (TYPE s3{''.join(', ' + o for o in options)})")


def attach_lake(con: duckdb.DuckDBPyConnection, catalog: str, data_path: str) -> None:
    """Make a DuckLake (its catalog database, e.g. `postgres:dbname=lake host=...`, and the
    folder or `s3://` object store its Parquet files go to) the connection's default catalog."""
    for name, package in LAKE_EXTENSIONS.items():
        con.execute(f"LOAD {literal(str(extension_file(name, package)))}")
    if data_path.startswith("s3://"):
        create_s3_secret(con, os.environ)
    attach = (
        f"ATTACH {literal('ducklake:' + catalog)} AS {LAKE_ALIAS} (DATA_PATH {literal(data_path)})"
    )
    for attempt in range(LAKE_INIT_ATTEMPTS):
        try:
            con.execute(attach)
            break
        except duckdb.Error as exc:
            # writers that meet a new lake all create its catalog tables; one wins, and the
            # others find the catalog there when they try again
            if "Failed to initialize DuckLake" not in str(exc) or attempt == LAKE_INIT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    con.execute(f"USE {LAKE_ALIAS}")


def lake_data_path(con: duckdb.DuckDBPyConnection) -> str:
    """The data path of the DuckLake that is the connection's current catalog."""
    sql = "SELECT value FROM ducklake_options(current_database()) WHERE option_name = 'data_path'"
    return scalar(con, sql)
