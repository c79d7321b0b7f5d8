"""Data-quality measurements behind the `validated` gates: plain queries returning plain numbers,
and the pandera schema the spec's rules compile to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.lib.ingest import open_landed
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import quote, scalar, table
from mlops_contract.record import RecordField

PANDAS_TYPES = {
    "float": "float64",
    "int": "Int64",
    "category": "object",
    "bool": "boolean",
    "date": "datetime64[ns]",
}


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


def _pandera_column(rule: RecordField) -> pa.Column:
    checks = []
    if rule.minimum is not None:
        checks.append(pa.Check.ge(rule.minimum))
    if rule.maximum is not None:
        checks.append(pa.Check.le(rule.maximum))
    if rule.type == "float":
        checks.append(pa.Check(np.isfinite, element_wise=False, name="finite"))
    if rule.allowed is not None:
        checks.append(pa.Check.isin(list(rule.allowed)))
    dtype = PANDAS_TYPES[rule.type] if rule.type != "category" else None
    return pa.Column(dtype, checks=checks, nullable=rule.nullable)


def pandera_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The row rules of a spec, the same `RecordField`s the SQL split enforces, as a pandera schema
    over the typed columns."""
    return pa.DataFrameSchema({r.column: _pandera_column(r) for r in spec.rules}, strict=False)


def typed_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The spec columns of rows read from `<ds>.validated`, in `pandera_schema`'s dtypes."""
    return frame.astype({r.column: PANDAS_TYPES[r.type] for r in spec.rules})


FAILURE_COLUMNS = ["_row_number", "column", "check", "failure_case"]


def contract_failures(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str, sample_rows: int = 100_000
) -> tuple[int, pd.DataFrame]:
    """Pandera's verdict on a seeded sample of the partition's validated rows, independent of
    the SQL that chose them: (rows checked, failure cases; empty when they all conform)."""
    columns = ", ".join(quote(c.name) for c in spec.columns)
    sample = con.execute(
        f"SELECT * FROM (SELECT _row_number, {columns} FROM {table(spec.name, 'validated')} "
        f"WHERE _partition = $p) USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (0)",
        {"p": partition},
    ).df()
    try:
        pandera_schema(spec).validate(typed_frame(sample, spec), lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        rows = cases["index"].map(sample["_row_number"])
        return len(sample), cases.assign(_row_number=rows)[FAILURE_COLUMNS]
    return len(sample), pd.DataFrame(columns=FAILURE_COLUMNS)


class LineAccount(NamedTuple):
    lines: int  # physical lines of the landed file below its header
    accounted: int  # of them, those a validated or quarantined row stands for

    @property
    def ok(self) -> bool:
        return self.lines == self.accounted


def line_account(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str) -> LineAccount:
    """Whether every line of the partition's landed file is a row of validated or quarantine.

    Empty lines hold no row and are not counted. A row stands for one line, plus the line
    breaks inside its quoted text values; a malformed line stands for one line only, so that
    lines swallowed by an unterminated quote show as missing.
    """
    row = con.execute(
        f"SELECT lines - has_header::INT, landed_file FROM {table(spec.name, 'raw_files')} "
        "WHERE _partition = $p",
        {"p": partition},
    ).fetchone()
    lines, landed = row if row and row[0] is not None else (-1, None)
    breaks = " + ".join(
        f"coalesce(length({quote(c.name)}) - length(replace({quote(c.name)}, chr(10), '')), 0)"
        for c in spec.columns
        if c.type == "category"
    )
    validated = scalar(
        con,
        f"SELECT count(*) + coalesce(sum({breaks or '0'}), 0) "
        f"FROM {table(spec.name, 'validated')} WHERE _partition = $p",
        {"p": partition},
    )
    quarantined = scalar(
        con,
        "SELECT count(*) + coalesce(sum(CASE WHEN _reasons LIKE 'malformed line:%' THEN 0 ELSE "
        "length(_line) - length(replace(_line, chr(10), '')) END), 0) "
        f"FROM {table(spec.name, 'quarantine')} WHERE _partition = $p",
        {"p": partition},
    )
    accounted = validated + quarantined
    if lines != accounted and landed:  # the reader skips empty lines: they hold no row
        lines -= _empty_lines(landed)
    return LineAccount(lines, accounted)


def _empty_lines(landed: str) -> int:
    with open_landed(landed) as handle:
        return sum(1 for line in handle if not line.strip(b"\r\n"))
