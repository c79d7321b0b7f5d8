"""Split one raw partition into `<ds>.validated` and `<ds>.quarantine`, in SQL.

The spec compiles to SQL: per column, its typed value (NULL for NA or text that does not parse)
and the reason the value breaks a rule (unparsable, missing, not finite, out of range, not an
allowed value), or NULL. DuckDB evaluates that over the whole partition in parallel and spills past
its memory limit, so a file of any size is split in bounded memory, without a trip through pandas.
Every raw row lands in exactly one of the two tables.

The SQL is generated from the spec's `ColumnRule`s, as is `quality.pandera_schema`, which the
`validated_conforms_to_spec` gate runs on a sample of the result: an independent check on the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from mlops_assets.lib.spec import ColumnRule, DatasetSpec
from mlops_assets.lib.warehouse import quote, scalar, table, transaction

SQL_TYPES = {
    "float": "DOUBLE",
    "int": "BIGINT",
    "category": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
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
    reasons: dict[str, int] = field(default_factory=dict)


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _typed_expression(rule: ColumnRule, spec: DatasetSpec) -> str:
    """SQL turning the raw text of a column into its spec type; NULL when it does not parse."""
    text = f"trim({quote(rule.column)})"
    if spec.read.thousands:
        text = f"replace({text}, {_literal(spec.read.thousands)}, '')"
    if rule.type == "float":
        return f"TRY_CAST({text} AS DOUBLE)"
    if rule.type == "int":
        number = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {number} = round({number}) THEN TRY_CAST({number} AS BIGINT) END"
    if rule.type == "bool":
        lowered = f"lower({text})"
        truthy = ", ".join(map(_literal, TRUE_TEXT))
        falsy = ", ".join(map(_literal, FALSE_TEXT))
        return (
            f"CASE WHEN {lowered} IN ({truthy}) THEN true "
            f"WHEN {lowered} IN ({falsy}) THEN false END"
        )
    if rule.type == "date":
        if rule.date_format:
            return f"CAST(TRY_STRPTIME({text}, {_literal(rule.date_format)}) AS DATE)"
        return f"TRY_CAST({text} AS DATE)"
    return text


def _na_list(spec: DatasetSpec) -> str:
    """The texts that mean 'no value', as a SQL list."""
    return ", ".join(_literal(v) for v in spec.read.na_values) or "NULL"


def _typed_sql(rule: ColumnRule, spec: DatasetSpec) -> str:
    """The typed value, NULL for a missing value (empty, NA text) or one that does not parse."""
    name = quote(rule.column)
    is_na = f"({name} IS NULL OR trim({name}) IN ({_na_list(spec)}))"
    return f"CASE WHEN {is_na} THEN NULL ELSE {_typed_expression(rule, spec)} END"


def _reason_sql(rule: ColumnRule, spec: DatasetSpec, position: int) -> str:
    """The first rule the value breaks, as '<column>: <reason>', or NULL. Reads the typed value
    `__typed_<position>` and the text as read `__raw_<position>`."""
    typed, raw = f"__typed_{position}", f"__raw_{position}"
    value = f"'''' || {typed} || ''''" if rule.type == "category" else f"CAST({typed} AS VARCHAR)"
    required = not rule.nullable
    cases = [
        f"WHEN {typed} IS NULL AND {raw} IS NOT NULL AND trim({raw}) NOT IN ({_na_list(spec)}) "
        f"THEN '''' || {raw} || ''' is not a valid {rule.type}'",
        f"WHEN {typed} IS NULL THEN {_literal('missing value') if required else 'NULL'}",
    ]
    if rule.type == "float":
        cases.append(f"WHEN NOT isfinite({typed}) THEN {value} || ' is not a finite number'")
    if rule.minimum is not None:
        cases.append(
            f"WHEN {typed} < {rule.minimum!r} "
            f"THEN {value} || ' is below the spec minimum ({rule.minimum!r})'"
        )
    if rule.maximum is not None:
        cases.append(
            f"WHEN {typed} > {rule.maximum!r} "
            f"THEN {value} || ' is above the spec maximum ({rule.maximum!r})'"
        )
    if rule.allowed is not None:
        allowed = ", ".join(_literal(v) for v in rule.allowed)
        listed = _literal(", ".join(map(repr, rule.allowed)))
        cases.append(
            f"WHEN {typed} NOT IN ({allowed}) "
            f"THEN {value} || ' is not an allowed value (one of ' || {listed} || ')'"
        )
    label = _literal(f"{rule.column}: ")
    return f"{label} || (CASE {' '.join(cases)} END)"


def _judged_sql(spec: DatasetSpec) -> str:
    """One row per raw row of partition $p: its key and the list of its reasons (empty: valid)."""
    inner = ["_row_number", "_error"]
    for position, rule in enumerate(spec.rules):
        inner += [
            f"{quote(rule.column)} AS __raw_{position}",
            f"{_typed_sql(rule, spec)} AS __typed_{position}",
        ]
    reasons = ", ".join(_reason_sql(rule, spec, i) for i, rule in enumerate(spec.rules))
    return (
        "SELECT _row_number, CASE WHEN _error IS NOT NULL THEN ['malformed line: ' || _error] "
        f"ELSE list_filter([{reasons}], lambda reason: reason IS NOT NULL) END AS _reasons "
        f"FROM (SELECT {', '.join(inner)} FROM {table(spec.name, 'raw')} "
        "WHERE _partition = $p)"
    )


def _move_sql(spec: DatasetSpec) -> tuple[str, str]:
    """SQL moving the partition's rows from raw into validated (typed) and quarantine (as read,
    with the reasons from `_bad`)."""
    raw, keys = table(spec.name, "raw"), ", ".join(f"r.{c}" for c in KEY_COLUMNS)
    typed = ", ".join(f"{_typed_sql(r, spec)} AS {quote(r.column)}" for r in spec.rules)
    text = ", ".join(f"r.{quote(c.name)}" for c in spec.columns)
    valid = (
        f"INSERT INTO {table(spec.name, 'validated')} BY NAME SELECT {keys}, {typed} "
        f"FROM {raw} r ANTI JOIN _bad b USING (_row_number) WHERE r._partition = $p"
    )
    quarantine = (
        f"INSERT INTO {table(spec.name, 'quarantine')} BY NAME SELECT {keys}, {text}, r._line, "
        f"array_to_string(b._reasons, '; ') AS _reasons FROM {raw} r "
        "JOIN _bad b USING (_row_number) WHERE r._partition = $p"
    )
    return valid, quarantine


def create_tables(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> None:
    keys = "_partition VARCHAR, _source_file VARCHAR, _row_number BIGINT"
    typed = ", ".join(f"{quote(c.name)} {SQL_TYPES[c.type]}" for c in spec.columns)
    text = ", ".join(f"{quote(c.name)} VARCHAR" for c in spec.columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'validated')} ({keys}, {typed})")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'quarantine')} "
        f"({keys}, {text}, _line VARCHAR, _reasons VARCHAR)"
    )


def check_columns(file_columns: list[str], spec: DatasetSpec, file_name: str) -> None:
    missing = [c.name for c in spec.columns if c.name not in file_columns]
    if missing:
        raise MissingColumns(f"{file_name}: missing column(s) required by the spec: {missing}")


def validate_partition(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str
) -> ValidationSummary:
    """Replace `partition` in validated and quarantine with the verdict on its raw rows."""
    create_tables(con, spec)
    params = {"p": partition}
    try:
        with transaction(con):
            for name in ("validated", "quarantine"):
                con.execute(f"DELETE FROM {table(spec.name, name)} WHERE _partition = $p", params)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _bad AS SELECT * FROM "
                f"({_judged_sql(spec)}) WHERE len(_reasons) > 0",
                params,
            )
            for query in _move_sql(spec):
                con.execute(query, params)
            summary = _summary(con, spec, partition)
    finally:
        con.execute("DROP TABLE IF EXISTS _bad")
    return summary


def _summary(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str):
    rows = scalar(
        con,
        f"SELECT count(*) FROM {table(spec.name, 'raw')} WHERE _partition = $p",
        {"p": partition},
    )
    quarantined = scalar(con, "SELECT count(*) FROM _bad")
    by_column = con.execute(
        "SELECT split_part(reason, ':', 1), count(*) FROM "
        "(SELECT unnest(_reasons) AS reason FROM _bad) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return ValidationSummary(rows, rows - quarantined, quarantined, dict(by_column))
