"""Split one raw partition into `<ds>.validated` and `<ds>.quarantine`, in SQL.

The spec compiles to SQL: per column, its typed value (NULL for NA or text that does not parse)
and the reason the value breaks a rule (unparsable, missing, not finite, out of range, not an
allowed value), or NULL. DuckDB evaluates that over the partition's landed file, read once, in
parallel, spilling past its memory limit, so a file of any size is split in bounded memory.
The read screens every line with cheap expressions (a finite number, an allowed category); only
the lines they do not pass (about the bad share) are judged by the full rules. Every line of the
file lands in exactly one of the two tables, numbered by its line in the file.

The SQL is generated from the spec's `RecordField`s, as is `quality.pandera_schema`, which the
`validated_conforms_to_spec` gate runs on a sample of the result: an independent check on the SQL.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mlops_assets.lib.ingest import read_csv_sql, shift_keys_sql
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import literal, quote, scalar, table, transaction
from mlops_contract.record import RecordField

SQL_TYPES = {
    "float": "DOUBLE",
    "int": "BIGINT",
    "category": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
}
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")
SHIFT_BUCKET = 2048  # accepted positions per bucket of the join that numbers them


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
    return literal(str(value))


def _typed_expression(rule: RecordField, spec: DatasetSpec) -> str:
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


def _typed_sql(rule: RecordField, spec: DatasetSpec) -> str:
    """The typed value, NULL for a missing value (empty, NA text) or one that does not parse."""
    name = quote(rule.column)
    is_na = f"({name} IS NULL OR trim({name}) IN ({_na_list(spec)}))"
    return f"CASE WHEN {is_na} THEN NULL ELSE {_typed_expression(rule, spec)} END"


def _reason_sql(rule: RecordField, spec: DatasetSpec, position: int) -> str:
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


def _fast_numbers(spec: DatasetSpec) -> bool:
    """Whether a plain TRY_CAST may stand for a numeric column's full typing when it yields a
    finite number: no thousands separator to strip, and no NA text that reads as a number."""
    if spec.read.thousands:
        return False
    for text in spec.read.na_values:
        try:
            if math.isfinite(float(text.strip())):
                return False
        except ValueError:
            continue
    return True


def _fast_typed_sql(rule: RecordField, spec: DatasetSpec) -> str:
    """The typed value for the usual text (a finite number, an allowed category as is) through a
    cheap expression, else NULL: such a row is then judged again by the full rules."""
    name = quote(rule.column)
    if rule.type in ("float", "int") and _fast_numbers(spec):
        number = f"TRY_CAST({name} AS DOUBLE)"
        if rule.type == "float":
            return f"CASE WHEN isfinite({number}) THEN {number} END"
        whole = f"isfinite({number}) AND {number} = round({number})"
        return f"CASE WHEN {whole} THEN CAST({number} AS BIGINT) END"
    plain = rule.allowed is not None and all(
        isinstance(v, str) and v == v.strip() and v not in spec.read.na_values for v in rule.allowed
    )
    if rule.type == "category" and plain:
        return (
            f"CASE WHEN {name} IN ({', '.join(_literal(v) for v in rule.allowed)}) THEN {name} END"
        )
    return _typed_sql(rule, spec)


def _passes_sql(rule: RecordField, position: int) -> str:
    """True when the typed value surely breaks no rule (a NULL is left to `_reason_sql`)."""
    typed = f"__typed_{position}"
    checks = [f"{typed} IS NOT NULL"]
    if rule.type == "float":
        checks.append(f"isfinite({typed})")
    if rule.minimum is not None:
        checks.append(f"{typed} >= {rule.minimum!r}")
    if rule.maximum is not None:
        checks.append(f"{typed} <= {rule.maximum!r}")
    if rule.allowed is not None:
        checks.append(f"{typed} IN ({', '.join(_literal(v) for v in rule.allowed)})")
    return " AND ".join(checks)


def _line_sql(spec: DatasetSpec, columns: list[str]) -> str:
    """The line rebuilt from its fields: joined by the delimiter, a field quoted when it holds
    the delimiter, the quote or a line break (a needless quote in the source is not rebuilt)."""
    delimiter, quote_char = _literal(spec.read.delimiter), _literal(spec.read.quote)
    doubled = _literal(spec.read.quote * 2)
    fields = []
    for column in columns:
        value = f"coalesce({quote(column)}, '')"
        special = " OR ".join(
            f"contains({value}, {c})" for c in (delimiter, quote_char, "chr(10)", "chr(13)")
        )
        quoted = f"{quote_char} || replace({value}, {quote_char}, {doubled}) || {quote_char}"
        fields.append(f"CASE WHEN {special} THEN {quoted} ELSE {value} END")
    return f"concat_ws({delimiter}, {', '.join(fields)})"


def _screened_sql(spec: DatasetSpec, source: str, columns: list[str]) -> str:
    """One row per line `source` splits, in file order: the cheaply typed values, whether they
    surely break no rule (`__ok`), and for the other rows their fields as read."""
    inner = [quote(c) for c in columns] + [
        f"{_fast_typed_sql(rule, spec)} AS __typed_{i}" for i, rule in enumerate(spec.rules)
    ]
    passes = " AND ".join(_passes_sql(rule, i) for i, rule in enumerate(spec.rules)) or "true"
    typed = ", ".join(f"__typed_{i}" for i in range(len(spec.rules)))
    fields = ", ".join(quote(c) for c in columns)
    return (
        f"SELECT {typed}, __ok, CASE WHEN NOT __ok THEN [{fields}] END AS __fields "
        f"FROM (SELECT *, {passes} AS __ok FROM (SELECT {', '.join(inner)} FROM {source}))"
    )


def _judged_sql(spec: DatasetSpec, columns: list[str]) -> str:
    """The screened rows not surely valid, judged by the full rules: position, typed values,
    values as read, line and reasons (empty: valid after all)."""
    fields = ", ".join(f"__fields[{i + 1}] AS {quote(c)}" for i, c in enumerate(columns))
    inner = ["__k", *(quote(c) for c in columns)]
    for position, rule in enumerate(spec.rules):
        inner += [
            f"{quote(rule.column)} AS __raw_{position}",
            f"{_typed_sql(rule, spec)} AS __typed_{position}",
        ]
    reasons = ", ".join(_reason_sql(rule, spec, i) for i, rule in enumerate(spec.rules))
    typed = ", ".join(f"__typed_{i}" for i in range(len(spec.rules)))
    text = ", ".join(f"{quote(c.name)} AS {quote('__text_' + c.name)}" for c in spec.columns)
    return (
        f"SELECT __k, {typed}, {text}, {_line_sql(spec, columns)} AS _line, "
        f"list_filter([{reasons}], lambda reason: reason IS NOT NULL) AS _reasons "
        f"FROM (SELECT {', '.join(inner)} FROM (SELECT rowid AS __k, {fields} "
        "FROM _screened WHERE NOT __ok))"
    )


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
        raise MissingColumns(
            f"{file_name}: missing column(s) required by the spec: {missing};"
            f" the file has: {file_columns}"
        )


def _partition_file(con, spec: DatasetSpec, partition: str) -> tuple[str, str, list[str], bool]:
    rows = con.execute(
        "SELECT source_file, landed_file, columns, has_header "
        f"FROM {table(spec.name, 'raw_files')} WHERE _partition = $p",
        {"p": partition},
    ).fetchall()
    if not rows or not rows[0][1]:
        raise MissingColumns(f"{partition}: no landed file; materialize raw for it first")
    source, landed, columns, has_header = rows[0]
    return Path(source).name, landed, json.loads(columns), has_header


def _shifts_sql(spec: DatasetSpec, bucket: int = SHIFT_BUCKET) -> str:
    """Ranges [lo, hi) of accepted positions that the same number of malformed lines precede,
    with that number, once per bucket of `bucket` positions they touch: an equi-join on the
    bucket numbers the accepted lines without sorting them."""
    keys = f"SELECT 0 AS k, 0 AS shift UNION ALL {shift_keys_sql(spec, '$p')}"
    ranges = (
        "SELECT k AS lo, lead(k, 1, (SELECT count(*) FROM _screened)) OVER (ORDER BY k) AS hi, "
        f"shift FROM (SELECT k, max(shift) AS shift FROM ({keys}) GROUP BY k)"
    )
    return (
        f"SELECT lo, hi, shift, unnest(range(lo // {bucket}, hi // {bucket} + 1)) AS bucket "
        f"FROM ({ranges})"
    )


def _move_sql(spec: DatasetSpec, shifted: bool) -> tuple[str, str, str]:
    """SQL moving the valid rows into validated (typed), the others into quarantine (as read,
    with their reasons and line), and the malformed lines into quarantine."""
    keys = "$p AS _partition, $f AS _source_file"
    if shifted:
        number = "j.__k + 1 + s.shift AS _row_number"
        join = (
            f"JOIN ({_shifts_sql(spec)}) s ON j.__k // {SHIFT_BUCKET} = s.bucket "
            "AND j.__k >= s.lo AND j.__k < s.hi"
        )
    else:
        number, join = "j.__k + 1 AS _row_number", ""
    typed = ", ".join(f"__typed_{i} AS {quote(r.column)}" for i, r in enumerate(spec.rules))
    valid_rows = (
        f"SELECT rowid AS __k, {typed} FROM _screened WHERE __ok UNION ALL "
        f"SELECT __k, {typed} FROM _judged WHERE len(_reasons) = 0"
    )
    text = ", ".join(f"j.{quote('__text_' + c.name)} AS {quote(c.name)}" for c in spec.columns)
    valid = (
        f"INSERT INTO {table(spec.name, 'validated')} BY NAME SELECT {keys}, {number}, "
        f"{', '.join('j.' + quote(r.column) for r in spec.rules)} FROM ({valid_rows}) j {join}"
    )
    quarantine = (
        f"INSERT INTO {table(spec.name, 'quarantine')} BY NAME SELECT {keys}, {number}, {text}, "
        f"j._line, array_to_string(j._reasons, '; ') AS _reasons FROM _judged j {join} "
        "WHERE len(j._reasons) > 0"
    )
    malformed = (
        f"INSERT INTO {table(spec.name, 'quarantine')} BY NAME SELECT _partition, _source_file, "
        "_row_number, _line, 'malformed line: ' || _error AS _reasons "
        f"FROM {table(spec.name, 'raw_malformed')} WHERE _partition = $p"
    )
    return valid, quarantine, malformed


def validate_partition(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str
) -> ValidationSummary:
    """Replace `partition` in validated and quarantine with the verdict on its landed file,
    read once."""
    create_tables(con, spec)
    source, landed, columns, has_header = _partition_file(con, spec, partition)
    # rejects stored, as when it landed: ignoring errors, DuckDB resynchronises otherwise
    reader = read_csv_sql(spec, columns, has_header, landed, rejects=True)
    params = {"p": partition, "f": source}
    # outside the transaction, so that the screened rows' rowids are their positions in the file
    con.execute(f"CREATE OR REPLACE TEMP TABLE _screened AS {_screened_sql(spec, reader, columns)}")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _judged AS {_judged_sql(spec, columns)}")
        malformed = scalar(
            con,
            f"SELECT count(*) FROM {table(spec.name, 'raw_malformed')} WHERE _partition = $p",
            {"p": partition},
        )
        with transaction(con):
            for name in ("validated", "quarantine"):
                con.execute(
                    f"DELETE FROM {table(spec.name, name)} WHERE _partition = $p", {"p": partition}
                )
            for query in _move_sql(spec, shifted=malformed > 0):
                con.execute(query, params if "$f" in query else {"p": partition})
            summary = _summary(con, spec, partition, malformed)
    finally:
        con.execute(
            "DROP TABLE IF EXISTS _screened; DROP TABLE IF EXISTS _judged; "
            "DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _rejects_scan"
        )
    return summary


def _summary(con, spec: DatasetSpec, partition: str, malformed: int) -> ValidationSummary:
    rows = scalar(
        con,
        f"SELECT rows FROM {table(spec.name, 'raw_files')} WHERE _partition = $p",
        {"p": partition},
    )
    judged = scalar(con, "SELECT count(*) FROM _screened")
    if judged + malformed != rows:
        raise RuntimeError(
            f"{partition}: the file now reads as {judged + malformed} lines, {rows} when it landed"
        )
    quarantined = scalar(
        con,
        f"SELECT count(*) FROM {table(spec.name, 'quarantine')} WHERE _partition = $p",
        {"p": partition},
    )
    by_column = con.execute(
        "SELECT split_part(reason, ':', 1), count(*) FROM (SELECT unnest(string_split(_reasons, "
        f"'; ')) AS reason FROM {table(spec.name, 'quarantine')} WHERE _partition = $p) "
        "GROUP BY ALL ORDER BY ALL",
        {"p": partition},
    ).fetchall()
    return ValidationSummary(rows, rows - quarantined, quarantined, dict(by_column))
