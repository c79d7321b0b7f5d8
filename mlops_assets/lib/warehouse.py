"""Small DuckDB helpers shared by every table the pipeline writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
