"""Split one raw partition into `<ds>.validated` and `<ds>.quarantine`, chunk by chunk.

DuckDB parses the text values into the spec's types (a value that does not parse is a reason);
a pandera schema built from the spec applies the row rules (nullability, ranges, allowed values,
target present). Every raw row lands in exactly one of the two tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.lib.spec import Column, DatasetSpec
from mlops_assets.lib.warehouse import quote, scalar, table

CHUNK_ROWS = 250_000
SQL_TYPES = {
    "float": "DOUBLE",
    "int": "BIGINT",
    "category": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
}
PANDAS_TYPES = {
    "float": "float64",
    "int": "Int64",
    "category": "object",
    "bool": "boolean",
    "date": "datetime64[ns]",
}
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")
KEY_COLUMNS = ["_partition", "_source_file", "_row_number"]


class MissingColumns(ValueError):
    """The file lacks columns the spec requires."""


@dataclass
class ValidationSummary:
    rows: int = 0
    valid: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _typed_expression(column: Column, spec: DatasetSpec) -> str:
    """SQL turning the raw text of `column` into its spec type; NULL for NA or unparsable."""
    text = f"trim({quote(column.name)})"
    if spec.read.thousands:
        text = f"replace({text}, {_literal(spec.read.thousands)}, '')"
    if column.type == "float":
        return f"TRY_CAST({text} AS DOUBLE)"
    if column.type == "int":
        number = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {number} = round({number}) THEN TRY_CAST({number} AS BIGINT) END"
    if column.type == "bool":
        lowered = f"lower({text})"
        truthy = ", ".join(map(_literal, TRUE_TEXT))
        falsy = ", ".join(map(_literal, FALSE_TEXT))
        return (
            f"CASE WHEN {lowered} IN ({truthy}) THEN true "
            f"WHEN {lowered} IN ({falsy}) THEN false END"
        )
    if column.type == "date":
        if column.format:
            return f"CAST(TRY_STRPTIME({text}, {_literal(column.format)}) AS DATE)"
        return f"TRY_CAST({text} AS DATE)"
    return text


CHUNK_FILTER = "_partition = $p AND _row_number > $lo AND _row_number <= $hi"


def _typed_columns(spec: DatasetSpec) -> list[tuple[str, str]]:
    """Per spec column: (typed value SQL, 'has a value that does not parse' SQL)."""
    na_list = ", ".join(_literal(v) for v in spec.read.na_values) or "NULL"
    columns = []
    for column in spec.columns:
        name = quote(column.name)
        is_na = f"({name} IS NULL OR trim({name}) IN ({na_list}))"
        typed = _typed_expression(column, spec)
        columns.append(
            (
                f"CASE WHEN {is_na} THEN NULL ELSE {typed} END",
                f"(NOT {is_na} AND ({typed}) IS NULL)",
            )
        )
    return columns


def _chunk_query(spec: DatasetSpec) -> str:
    """What pandera needs to judge a chunk: raw text, typed values, parse failures."""
    selects = list(KEY_COLUMNS) + ["_error"]
    for position, (column, (typed, unparsable)) in enumerate(
        zip(spec.columns, _typed_columns(spec), strict=True)
    ):
        selects += [
            f"{quote(column.name)} AS __raw_{position}",
            f"{typed} AS __typed_{position}",
            f"{unparsable} AS __unparsable_{position}",
        ]
    return f"SELECT {', '.join(selects)} FROM {table(spec.name, 'raw')} WHERE {CHUNK_FILTER}"


def _insert_queries(spec: DatasetSpec) -> tuple[str, str]:
    """SQL moving a judged chunk from raw into validated (typed) and quarantine (as read, with
    the reasons from `_bad`): the rows never travel through pandas on the way back."""
    raw, keys = table(spec.name, "raw"), ", ".join(KEY_COLUMNS)
    typed = ", ".join(
        f"{sql} AS {quote(column.name)}"
        for column, (sql, _) in zip(spec.columns, _typed_columns(spec), strict=True)
    )
    text = ", ".join(f"r.{quote(c.name)}" for c in spec.columns)
    valid = (
        f"INSERT INTO {table(spec.name, 'validated')} BY NAME SELECT {keys}, {typed} FROM {raw} "
        f"WHERE {CHUNK_FILTER} AND _row_number NOT IN (SELECT _row_number FROM _bad)"
    )
    quarantine = (
        f"INSERT INTO {table(spec.name, 'quarantine')} BY NAME SELECT r._partition, "
        f"r._source_file, r._row_number, {text}, r._line, b._reasons FROM {raw} r "
        f"JOIN _bad b USING (_row_number) WHERE {CHUNK_FILTER}"
    )
    return valid, quarantine


def pandera_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The row rules of a spec as a pandera schema over the typed columns."""
    columns = {}
    for column in spec.columns:
        checks = []
        if column.min is not None:
            checks.append(pa.Check.ge(column.min, name=f"at least {column.min}"))
        if column.max is not None:
            checks.append(pa.Check.le(column.max, name=f"at most {column.max}"))
        if column.type == "float":
            checks.append(pa.Check(np.isfinite, element_wise=False, name="finite"))
        if column.allowed is not None:
            checks.append(pa.Check.isin(column.allowed, name=f"one of {column.allowed}"))
        nullable = column.nullable and column.name != spec.target
        columns[column.name] = pa.Column(
            PANDAS_TYPES[column.type] if column.type != "category" else None,
            checks=checks,
            nullable=nullable,
        )
    return pa.DataFrameSchema(columns, strict=False)


def _typed_frame(chunk: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    typed = pd.DataFrame(index=chunk.index)
    for position, column in enumerate(spec.columns):
        typed[column.name] = chunk[f"__typed_{position}"].astype(PANDAS_TYPES[column.type])
    return typed


def row_reasons(chunk: pd.DataFrame, spec: DatasetSpec, schema: pa.DataFrameSchema) -> pd.Series:
    """For each row of a chunk, '; '-joined reasons it is quarantined ('' when it is valid)."""
    reasons: dict[int, list[str]] = defaultdict(list)
    unparsable: set[tuple[int, str]] = set()
    for index, error in chunk["_error"].dropna().items():
        reasons[index].append(f"malformed line: {error}")
    for position, column in enumerate(spec.columns):
        bad = chunk.index[chunk[f"__unparsable_{position}"].fillna(False).astype(bool)]
        for index in bad:
            value = chunk.at[index, f"__raw_{position}"]
            reasons[index].append(f"{column.name}: {value!r} is not a valid {column.type}")
            unparsable.add((index, column.name))
    typed = _typed_frame(chunk, spec)
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        for case in errors.failure_cases.itertuples():
            _add_failure(case, chunk, reasons, unparsable)
    joined = {index: "; ".join(dict.fromkeys(texts)) for index, texts in reasons.items()}
    return pd.Series(joined, dtype="object").reindex(chunk.index, fill_value="")


def _add_failure(case, chunk: pd.DataFrame, reasons: dict, unparsable: set) -> None:
    if case.index is None or pd.isna(case.index):
        return  # schema-level failure (e.g. a dtype); row-level cases carry the detail
    index = int(case.index)
    if chunk.at[index, "_error"] is not None or (index, case.column) in unparsable:
        return  # already explained by a malformed line or an unparsable value
    reasons[index].append(f"{case.column}: {_describe(case.check, case.failure_case)}")


def _describe(check: str, value) -> str:
    if check == "not_nullable":
        return "missing value"
    for prefix, text in (
        ("isin", "is not an allowed value"),
        ("greater_than_or_equal_to", "is below the spec minimum"),
        ("less_than_or_equal_to", "is above the spec maximum"),
        ("finite", "is not a finite number"),
    ):
        if check.startswith(prefix):
            return f"{value!r} {text} ({check})"
    return f"{value!r} fails {check}"


def create_tables(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> None:
    keys = "_partition VARCHAR, _source_file VARCHAR, _row_number BIGINT"
    typed = ", ".join(f"{quote(c.name)} {SQL_TYPES[c.type]}" for c in spec.columns)
    text = ", ".join(f"{quote(c.name)} VARCHAR" for c in spec.columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'validated')} ({keys}, {typed})")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'quarantine')} "
        f"({keys}, {text}, _line VARCHAR, _reasons VARCHAR)"
    )


def _write_chunk(con, queries: tuple[str, str], chunk, reasons: pd.Series, params) -> int:
    bad = reasons != ""
    verdicts = pd.DataFrame(
        {"_row_number": chunk.loc[bad, "_row_number"].astype("int64"), "_reasons": reasons[bad]}
    )
    con.register("_bad", verdicts)
    try:
        for query in queries:
            con.execute(query, params)
    finally:
        con.unregister("_bad")
    return int(bad.sum())


def check_columns(file_columns: list[str], spec: DatasetSpec, file_name: str) -> None:
    missing = [c.name for c in spec.columns if c.name not in file_columns]
    if missing:
        raise MissingColumns(f"{file_name}: missing column(s) required by the spec: {missing}")


def validate_partition(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str, chunk_rows: int = CHUNK_ROWS
) -> ValidationSummary:
    """Replace `partition` in validated and quarantine with the verdict on its raw rows."""
    create_tables(con, spec)
    summary = ValidationSummary()
    schema = pandera_schema(spec)
    query, inserts = _chunk_query(spec), _insert_queries(spec)
    params = {"p": partition}
    last = (
        scalar(
            con,
            f"SELECT max(_row_number) FROM {table(spec.name, 'raw')} WHERE _partition = $p",
            params,
        )
        or 0
    )
    con.execute("BEGIN TRANSACTION")
    try:
        for name in ("validated", "quarantine"):
            con.execute(f"DELETE FROM {table(spec.name, name)} WHERE _partition = $p", params)
        for low in range(0, last, chunk_rows):
            bounds = {**params, "lo": low, "hi": low + chunk_rows}
            chunk = con.execute(query, bounds).df()
            reasons = row_reasons(chunk, spec, schema)
            quarantined = _write_chunk(con, inserts, chunk, reasons, bounds)
            summary.rows += len(chunk)
            summary.quarantined += quarantined
            for text in reasons[reasons != ""]:
                for reason in text.split("; "):
                    summary.reasons[reason.split(":", 1)[0]] += 1
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    summary.valid = summary.rows - summary.quarantined
    return summary
