"""Load a source file into `<ds>.raw` unchanged: every value as text, every line accounted for.

Lines DuckDB cannot split into the expected fields (too few, too many, bad encoding) are kept as
rows with `_error` and the line text in `_line`, so validation quarantines them with a reason.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mlops_assets.lib.spec import DatasetSpec, api_name_for
from mlops_assets.lib.warehouse import quote, scalar, table, transaction
from serving.bundle import sha256_of

META_COLUMNS = ["_partition", "_source_file", "_row_number", "_error", "_line"]


class FileRejected(ValueError):
    """A file-level fault: the whole file is unusable. The message names the file."""


@dataclass(frozen=True)
class LoadResult:
    rows: int
    malformed_lines: int
    columns: list[str]
    has_header: bool
    sha256: str


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.readline().decode("utf-8", errors="replace").rstrip("\r\n")


def _split(line: str, spec: DatasetSpec) -> list[str]:
    reader = csv.reader(io.StringIO(line), delimiter=spec.read.delimiter, quotechar=spec.read.quote)
    return [field.strip() for field in next(reader, [])]


def _looks_like_header(fields: list[str], spec: DatasetSpec) -> bool:
    known = {api_name_for(c.name).lower() for c in spec.columns}
    return sum(api_name_for(f).lower() in known for f in fields) >= max(1, len(spec.columns) // 2)


def file_columns(path: Path, spec: DatasetSpec) -> tuple[list[str], bool]:
    """The file's column names and whether its first line is a header."""
    if path.stat().st_size == 0:
        raise FileRejected(f"{path.name}: the file is empty")
    fields = _split(_first_line(path), spec)
    header = spec.read.header
    has_header = _looks_like_header(fields, spec) if header == "auto" else bool(header)
    expected = [c.name for c in spec.columns]
    if not has_header:
        if len(fields) != len(expected):
            raise FileRejected(
                f"{path.name}: expected {len(expected)} fields per line ({', '.join(expected)}), "
                f"the first line has {len(fields)}"
            )
        return expected, False
    by_key = {api_name_for(c.name).lower(): c.name for c in spec.columns}
    columns = [by_key.get(api_name_for(f).lower(), f) for f in fields]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated or any(not c for c in columns):
        raise FileRejected(f"{path.name}: the header has repeated or empty names: {repeated}")
    return columns, True


def _ensure_raw_tables(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, columns: list[str]):
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.name)}")
    data_columns = [c.name for c in spec.columns]
    ddl = ", ".join(
        ["_partition VARCHAR", "_source_file VARCHAR", "_row_number BIGINT"]
        + ["_error VARCHAR", "_line VARCHAR"]
        + [f"{quote(c)} VARCHAR" for c in data_columns]
    )
    con.execute(f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'raw')} ({ddl})")
    for extra in (c for c in columns if c not in data_columns):
        con.execute(
            f"ALTER TABLE {table(spec.name, 'raw')} ADD COLUMN IF NOT EXISTS {quote(extra)} VARCHAR"
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'raw_files')} (_partition VARCHAR, "
        "source_file VARCHAR, sha256 VARCHAR, bytes BIGINT, columns VARCHAR, has_header BOOLEAN, "
        "rows BIGINT, malformed_lines BIGINT, loaded_at TIMESTAMP)"
    )


def _read_csv_sql(spec: DatasetSpec, columns: list[str], has_header: bool) -> str:
    column_types = (
        "{" + ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in columns) + "}"
    )
    delimiter = spec.read.delimiter.replace("'", "''")
    quote_char = spec.read.quote.replace("'", "''")
    return (
        f"read_csv($path, header={str(has_header).lower()}, delim='{delimiter}', "
        f"quote='{quote_char}', escape='{quote_char}', columns={column_types}, auto_detect=false, "
        "all_varchar=true, store_rejects=true, rejects_table='_rejects', "
        "rejects_scan='_rejects_scan', null_padding=false, strict_mode=true, "
        "max_line_size=10000000, parallel=true)"
    )


def load_raw(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, path: Path, partition: str
) -> LoadResult:
    """Replace partition `partition` of `<ds>.raw` with the contents of `path`."""
    columns, has_header = file_columns(path, spec)
    raw = table(spec.name, "raw")
    # outside the transaction, so that the staged rows' rowids are their positions in the file
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _staging AS SELECT * FROM "
        + _read_csv_sql(spec, columns, has_header),
        {"path": str(path)},
    )
    try:
        with transaction(con):
            _ensure_raw_tables(con, spec, columns)
            for name in ("raw", "raw_files"):
                con.execute(
                    f"DELETE FROM {table(spec.name, name)} WHERE _partition = $p", {"p": partition}
                )
            malformed = _insert_rows(con, spec, raw, columns, has_header, path, partition)
            rows = scalar(
                con, f"SELECT count(*) FROM {raw} WHERE _partition = $p", {"p": partition}
            )
            if rows == 0:
                problem = "the header has no data rows below it" if has_header else "no data rows"
                raise FileRejected(f"{path.name}: {problem}")
            result = LoadResult(rows, malformed, columns, has_header, sha256_of(path))
            _record_file(con, spec, path, partition, result)
    finally:
        con.execute("DROP TABLE IF EXISTS _staging")
    return result


def _record_file(con, spec: DatasetSpec, path: Path, partition: str, result: LoadResult) -> None:
    con.execute(
        f"INSERT INTO {table(spec.name, 'raw_files')} VALUES ($p, $f, $s, $b, $c, $h, $r, $m, $t)",
        {
            "p": partition,
            "f": str(path),
            "s": result.sha256,
            "b": path.stat().st_size,
            "c": json.dumps(result.columns),
            "h": result.has_header,
            "r": result.rows,
            "m": result.malformed_lines,
            "t": datetime.now(UTC).replace(tzinfo=None),
        },
    )


def _insert_rows(con, spec, raw, columns, has_header, path, partition) -> int:
    """Insert accepted and rejected lines with row numbers in file order; returns rejected count.

    `_staging` holds the accepted lines in file order (its rowid); each takes the next row number
    the rejected lines leave free: its position plus the rejected lines before it."""
    offset = 1 if has_header else 0
    rejected = con.execute(
        "SELECT DISTINCT ON (line) line - $o AS row_number, error_message, csv_line FROM _rejects "
        "ORDER BY line",
        {"o": offset},
    ).df()
    selected = ", ".join(f"s.{quote(c)}" for c in columns)
    names = ", ".join(quote(c) for c in columns)
    params = {"p": partition, "f": path.name}
    con.register("_rejected", rejected)
    try:
        con.execute(
            f"INSERT INTO {raw} (_partition, _source_file, _row_number, {names}) "
            f"SELECT $p, $f, {_numbered_staging(shifted=bool(len(rejected)), selected=selected)}",
            params,
        )
        con.execute(
            f"INSERT INTO {raw} (_partition, _source_file, _row_number, _error, _line) "
            "SELECT $p, $f, row_number, error_message, csv_line FROM _rejected",
            params,
        )
    finally:
        con.unregister("_rejected")
        con.execute("DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _rejects_scan")
    return len(rejected)


def _numbered_staging(shifted: bool, selected: str) -> str:
    """Row number, `selected` and the FROM clause for the staged lines. With rejected lines, an
    ASOF join counts those before each accepted line (it sorts, so it is only paid then)."""
    if not shifted:
        return f"rowid + 1, {selected} FROM _staging s"
    shifts = (
        "SELECT row_number - rank AS k, max(rank) AS shift FROM (SELECT row_number, "
        "row_number() OVER (ORDER BY row_number) AS rank FROM _rejected) GROUP BY ALL"
    )
    return (
        f"s.k + 1 + coalesce(t.shift, 0), {selected} FROM (SELECT rowid AS k, * FROM _staging) s "
        f"ASOF LEFT JOIN ({shifts}) t ON s.k >= t.k"
    )
