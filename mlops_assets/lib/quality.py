"""Data-quality measurements behind the `validated` gates: plain queries returning plain numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import quote, scalar, table


@dataclass(frozen=True)
class SchemaReport:
    file_columns: list[str]
    missing: list[str]
    unexpected: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


def file_columns(con: duckdb.DuckDBPyConnection, dataset: str, partition: str) -> list[str]:
    rows = con.execute(
        f"SELECT columns FROM {table(dataset, 'raw_files')} WHERE _partition = $p", {"p": partition}
    ).fetchall()
    return json.loads(rows[0][0]) if rows else []


def schema_report(columns: list[str], spec: DatasetSpec) -> SchemaReport:
    expected = [c.name for c in spec.columns]
    return SchemaReport(
        file_columns=columns,
        missing=[c for c in expected if c not in columns],
        unexpected=[c for c in columns if c not in expected],
    )


def duplicate_share(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> tuple[int, int]:
    """(duplicate rows, total rows) over every validated partition, comparing spec columns."""
    columns = ", ".join(quote(c.name) for c in spec.columns)
    validated = table(spec.name, "validated")
    total = scalar(con, f"SELECT count(*) FROM {validated}")
    distinct = scalar(con, f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM {validated})")
    return total - distinct, total


def total_valid_rows(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> int:
    return scalar(con, f"SELECT count(*) FROM {table(spec.name, 'validated')}")


def quarantine_sample(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str, limit: int = 5
) -> pd.DataFrame:
    return con.execute(
        f"SELECT _row_number, _reasons FROM {table(spec.name, 'quarantine')} "
        "WHERE _partition = $p ORDER BY _row_number LIMIT $n",
        {"p": partition, "n": limit},
    ).df()


def duplicate_sample(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, limit: int = 5
) -> pd.DataFrame:
    columns = ", ".join(quote(c.name) for c in spec.columns)
    return con.execute(
        f"SELECT {columns}, count(*) AS copies FROM {table(spec.name, 'validated')} "
        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY copies DESC LIMIT $n",
        {"n": limit},
    ).df()
