"""Land a source file as the raw record of a partition: every line retrievable unchanged.

The file itself is the record: an immutable, content-addressed copy
`<data dir>/landed/<ds>/<sha256><suffix>` (a copy-on-write clone where the file system allows,
else a copy; an object in the bucket when the DuckLake's data path is an object store such as
`s3://`), listed in `<ds>.raw_files`. Lines DuckDB cannot split into the expected fields (too
few, too many, bad encoding) are also kept in `<ds>.raw_malformed` with the error and the line
text, so validation quarantines them with a reason. `<ds>.raw` is a view over both: every line
with its file and line number, every value as text (slow to query; the pipeline reads the file
itself).
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from fsspec.core import url_to_fs

from mlops_assets.lib.spec import DatasetSpec, api_name_for
from mlops_assets.lib.warehouse import lake_data_path, literal, quote, scalar, table, transaction

FICLONE = 0x40049409  # <linux/fs.h>: clone a whole file, copy-on-write
MAX_LINE_BYTES = 10_000_000  # DuckDB's max_line_size: a longer line is malformed
MAX_COLUMNS = 10_000  # a first line with more fields is no table of a spec: rejected at once
MAX_KEPT_LINE = MAX_LINE_BYTES  # the bytes of a malformed line kept in raw_malformed
META_COLUMNS = ["_partition", "_source_file", "_row_number", "_error", "_line"]


class FileRejected(ValueError):
    """A file-level fault: the whole file is unusable. The message names the file."""


@dataclass(frozen=True)
class LoadResult:
    rows: int
    malformed_lines: int
    lines: int
    columns: list[str]
    has_header: bool
    sha256: str
    landed_file: str  # a local path, or a URL such as `s3://...`


def _first_line(path: Path, name: str) -> str:
    """The first line, read in bounded memory: a longer one than a line may be rejects the file."""
    with path.open("rb") as handle:
        line = handle.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise FileRejected(f"{name}: the first line is longer than {MAX_LINE_BYTES:,} bytes")
    # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the first name
    return line.decode("utf-8-sig", errors="replace").rstrip("\r\n")


def _split(line: str, spec: DatasetSpec) -> list[str]:
    reader = csv.reader(io.StringIO(line), delimiter=spec.read.delimiter, quotechar=spec.read.quote)
    return [field.strip() for field in next(reader, [])]


def _looks_like_header(fields: list[str], spec: DatasetSpec) -> bool:
    known = {api_name_for(c.name).lower() for c in spec.columns}
    return sum(api_name_for(f).lower() in known for f in fields) >= max(1, len(spec.columns) // 2)


def file_columns(path: Path, spec: DatasetSpec, name: str | None = None) -> tuple[list[str], bool]:
    """The file's column names and whether its first line is a header; errors name the file
    `name` (default: its own name)."""
    name = name or path.name
    if path.stat().st_size == 0:
        raise FileRejected(f"{name}: the file is empty")
    fields = _split(_first_line(path, name), spec)
    if len(fields) > MAX_COLUMNS:
        raise FileRejected(f"{name}: {len(fields):,} fields, more than {MAX_COLUMNS:,}")
    header = spec.read.header
    has_header = _looks_like_header(fields, spec) if header == "auto" else bool(header)
    expected = [c.name for c in spec.columns]
    if not has_header:
        if len(fields) != len(expected):
            raise FileRejected(
                f"{name}: expected {len(expected)} fields per line ({', '.join(expected)}), "
                f"the first line has {len(fields)}"
            )
        return expected, False
    by_key = {api_name_for(c.name).lower(): c.name for c in spec.columns}
    columns = [by_key.get(api_name_for(f).lower(), f) for f in fields]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated or any(not c for c in columns):
        raise FileRejected(f"{name}: the header has repeated or empty names: {repeated}")
    return columns, True


def landed_folder(con: duckdb.DuckDBPyConnection, dataset: str) -> str:
    """`<data dir>/landed/<ds>`, the data dir being the folder of the warehouse file, or the
    DuckLake's data path (where every worker reads it): a local folder, or a URL such as
    `s3://bucket/lake/landed/<ds>`. An in-memory warehouse lives as long as its process, so its
    files land in a folder that does."""
    database, kind = con.execute(
        "SELECT path, type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()[0]
    if kind == "ducklake":
        data_path = lake_data_path(con)
        if is_url(data_path):
            return f"{data_path.rstrip('/')}/landed/{dataset}"
        return str(Path(data_path) / "landed" / dataset)
    if database:
        return str(Path(database).resolve().parent / "landed" / dataset)
    global _PROCESS_FOLDER
    if _PROCESS_FOLDER is None:
        _PROCESS_FOLDER = tempfile.TemporaryDirectory(prefix="mlops-landed-")  # removed at exit
    return str(Path(_PROCESS_FOLDER.name) / dataset)


def is_url(location: str) -> bool:
    return "://" in location


_PROCESS_FOLDER: tempfile.TemporaryDirectory | None = None


@dataclass(frozen=True)
class LandedFile:
    location: str  # where the record is kept: a local path, or a URL such as `s3://...`
    local: Path  # a local file with the same bytes, while the landing lasts
    sha256: str
    utf8: bool
    lines: int  # physical lines, the header included


STALE_STAGING_SECONDS = 3600  # a `.landing-*` copy this old was left by a crash or a full disk
# local copies bound for an object store, per user: another user's folder is not writable
URL_STAGING = Path(tempfile.gettempdir()) / f"mlops-landing-{os.getuid()}"


@contextmanager
def land(path: Path, folder: str) -> Iterator[LandedFile]:
    """The immutable, content-addressed copy of `path` under `folder` (a local folder, or a URL
    fsspec opens, such as `s3://...`), its sha256, whether it is valid UTF-8 and its line count.
    A file with the same bytes already landed is shared, not copied again. Staging copies left
    behind by a crash are removed."""
    if not is_url(folder):
        yield _land_in_folder(path, Path(folder))
        return
    staged = _stage(path, URL_STAGING)
    try:
        digest, utf8, lines = _scan(staged)  # of the bytes kept, whatever `path` becomes
        location = f"{folder}/{digest}{path.suffix}"
        fs, key = file_system(location)
        if not fs.exists(key):  # an object appears whole: no partial record is ever read
            fs.put_file(str(staged), key)
        yield LandedFile(location, staged, digest, utf8, lines)
    finally:
        staged.unlink(missing_ok=True)


def _land_in_folder(path: Path, folder: Path) -> LandedFile:
    staged = _stage(path, folder)
    try:
        digest, utf8, lines = _scan(staged)  # of the bytes kept, whatever `path` becomes
        landed = folder / f"{digest}{path.suffix}"
        if landed.exists():
            staged.unlink()
        else:
            staged.chmod(0o444)
            os.replace(staged, landed)
    finally:
        staged.unlink(missing_ok=True)
    return LandedFile(str(landed), landed, digest, utf8, lines)


def _stage(path: Path, folder: Path) -> Path:
    """A private copy of `path` in `folder`, after removing those a crash left there."""
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder)
    staged = folder / f".landing-{uuid.uuid4().hex}{path.suffix}"
    _clone_or_copy(path, staged)
    return staged


def file_system(location: str):
    """fsspec's file system for `location`, and the path in it. A new one each time: fsspec would
    hand back a cached S3 file system, with the endpoint and credentials of the AWS_* variables
    of its making (a process that outlives a change of them, e.g. a test's S3 server)."""
    return url_to_fs(location, skip_instance_cache=True)


def open_landed(location: str):
    """The landed file at `location` (a local path or a URL), open for reading bytes."""
    fs, key = file_system(location)
    return fs.open(key, "rb")


def _remove_landed(location: str) -> None:
    fs, key = file_system(location)
    with suppress(FileNotFoundError):  # another load forgot it meanwhile
        fs.rm_file(key)


def _remove_stale_staging(folder: Path) -> None:
    now = datetime.now(UTC).timestamp()
    for staged in folder.glob(".landing-*"):
        try:
            if now - staged.stat().st_mtime > STALE_STAGING_SECONDS:
                staged.unlink()
        except FileNotFoundError:  # another load finished with it meanwhile
            continue


def _clone_or_copy(source: Path, target: Path) -> None:
    """A reflink (copy-on-write clone: no bytes copied) where the file system has them (btrfs,
    XFS), else a copy. Not a hard link: it would share the source's inode, so overwriting the
    source in place (`cp new.csv` onto it) would rewrite the record, and making the record
    read-only would make the user's file read-only too."""
    with source.open("rb") as reader, target.open("wb") as writer:
        try:
            fcntl.ioctl(writer.fileno(), FICLONE, reader.fileno())
            return
        except OSError:  # not supported here, or another device
            pass
    shutil.copyfile(source, target)


def _scan(path: Path) -> tuple[str, bool, int]:
    """The file's sha256, whether it is valid UTF-8, and its physical line count (a last line
    without a line break counts)."""
    digest, decoder, utf8 = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), True
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            lines, last = lines + block.count(b"\n"), block[-1:]
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return digest.hexdigest(), utf8, lines + (last != b"\n")


def _ensure_raw_tables(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.name)}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'raw_files')} (_partition VARCHAR, "
        "source_file VARCHAR, sha256 VARCHAR, bytes BIGINT, columns VARCHAR, has_header BOOLEAN, "
        "rows BIGINT, malformed_lines BIGINT, loaded_at TIMESTAMP, landed_file VARCHAR, "
        "lines BIGINT)"
    )
    for column, kind in (("landed_file", "VARCHAR"), ("lines", "BIGINT")):
        con.execute(
            f"ALTER TABLE {table(spec.name, 'raw_files')} ADD COLUMN IF NOT EXISTS {column} {kind}"
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, 'raw_malformed')} (_partition VARCHAR, "
        "_source_file VARCHAR, _row_number BIGINT, _error VARCHAR, _line VARCHAR)"
    )
    kind = scalar(
        con,
        "SELECT any_value(table_type) FROM information_schema.tables "
        "WHERE table_schema = $s AND table_name = 'raw'",
        {"s": spec.name},
    )
    if kind == "BASE TABLE":  # a warehouse from before landing: keep its rows aside
        con.execute(f"ALTER TABLE {table(spec.name, 'raw')} RENAME TO raw_before_landing")


def read_csv_sql(
    spec: DatasetSpec,
    columns: list[str],
    has_header: bool,
    path: str,
    rejects: bool = False,
    parallel: bool = True,
) -> str:
    """DuckDB's reader over a source file, every value as text. With `rejects`, the lines it
    cannot split go to `_rejects`; without, they are skipped (they are in `raw_malformed`).
    Not `parallel`: one thread, so rows come in file order."""
    column_types = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in columns) + "}"
    delimiter, quote_char = literal(spec.read.delimiter), literal(spec.read.quote)
    errors = (
        "store_rejects=true, rejects_table='_rejects', rejects_scan='_rejects_scan'"
        if rejects
        else "ignore_errors=true"
    )
    return (
        f"read_csv({literal(path)}, header={str(has_header).lower()}, "
        f"delim={delimiter}, quote={quote_char}, escape={quote_char}, "
        f"columns={column_types}, auto_detect=false, all_varchar=true, {errors}, "
        f"null_padding=false, strict_mode=true, max_line_size={MAX_LINE_BYTES}, "
        f"parallel={str(parallel).lower()})"
    )


def load_raw(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, path: Path, partition: str
) -> LoadResult:
    """Make `path` the raw record of partition `partition`, replacing what it held."""
    with land(path, landed_folder(con, spec.name)) as copy:
        return _load_landed(con, spec, path, partition, copy)


def _load_landed(
    con, spec: DatasetSpec, path: Path, partition: str, copy: LandedFile
) -> LoadResult:
    # read while loading: the local copy; read later (the raw view, validation): the record
    landed, digest, utf8 = copy.local, copy.sha256, copy.utf8
    previous: list[str] = []
    try:
        # the header of the copy: `path` may have been replaced since
        columns, has_header = file_columns(landed, spec, path.name)
        reader = read_csv_sql(spec, columns, has_header, str(landed), rejects=True)
        # count(*) alone splits the lines but decodes no field: enough unless there are bad bytes
        counted = "count(*)" if utf8 else "count(*), count(COLUMNS(*))"
        try:
            accepted = scalar(con, f"SELECT {counted} FROM {reader}")
        except duckdb.InvalidInputException as exc:  # its message names the landed copy
            reason = str(exc).splitlines()[0].removeprefix("Invalid Input Error: ")
            raise FileRejected(f"{path.name}: not readable as CSV: {reason}") from None
        with transaction(con):
            _ensure_raw_tables(con, spec)
            previous = _landed_files(con, spec, partition)
            for name in ("raw_malformed", "raw_files"):
                con.execute(
                    f"DELETE FROM {table(spec.name, name)} WHERE _partition = $p", {"p": partition}
                )
            malformed = _insert_malformed(con, spec, has_header, path, landed, partition)
            if accepted + malformed == 0:
                problem = "the header has no data rows below it" if has_header else "no data rows"
                raise FileRejected(f"{path.name}: {problem}")
            result = LoadResult(
                accepted + malformed,
                malformed,
                copy.lines,
                columns,
                has_header,
                digest,
                copy.location,
            )
            _record_file(con, spec, path, landed.stat().st_size, partition, result)
            _refresh_raw_view(con, spec)
    finally:
        con.execute("DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _rejects_scan")
        _forget_unused(con, spec, [copy.location, *previous])
    return result


def _landed_files(con, spec: DatasetSpec, partition: str | None = None) -> list[str]:
    where = "" if partition is None else "WHERE _partition = $p"
    params = {} if partition is None else {"p": partition}
    rows = con.execute(
        f"SELECT DISTINCT landed_file FROM {table(spec.name, 'raw_files')} {where}", params
    ).fetchall()
    return [row[0] for row in rows if row[0]]


def _forget_unused(con, spec: DatasetSpec, candidates: list[str]) -> None:
    """Delete those of `candidates` that no partition uses any more."""
    try:
        in_use = set(_landed_files(con, spec))
    except duckdb.CatalogException:  # the first load failed before creating raw_files
        in_use = set()
    for location in set(candidates) - in_use:
        _remove_landed(location)


def _insert_malformed(
    con, spec: DatasetSpec, has_header: bool, path: Path, landed: Path, partition
) -> int:
    """Keep the lines the reader rejected, numbered by their line in the file, each whole as the
    landed file holds it (the reader's copy of a line is cut). A rejected record that swallowed
    further lines (a quote opened and never closed) is each of those lines, all malformed."""
    rejects = con.execute(
        "SELECT DISTINCT ON (line) line, line_byte_position, error_message, csv_line "
        "FROM _rejects ORDER BY line"
    ).fetchall()
    offset = 1 if has_header else 0
    rows = []
    with landed.open("rb") as handle:
        for line, start, error, csv_line in rejects:
            _seek_line(handle, start)
            spanned = csv_line.rstrip("\r\n").count("\n") + 1
            if spanned > 1:
                error = f"a quote opened on line {line - offset} is not closed: {error}"
            for extra in range(spanned):
                text = handle.readline(MAX_KEPT_LINE).decode("utf-8", errors="replace")
                if not text:  # the end of the file
                    break
                rows.append((line - offset + extra, error, text.rstrip("\r\n")))
    if rows:  # one statement: executemany costs a statement per line
        numbers, errors, texts = (list(column) for column in zip(*rows, strict=True))
        con.execute(
            f"INSERT INTO {table(spec.name, 'raw_malformed')} "
            "SELECT $p, $f, unnest($n), unnest($e), unnest($t)",
            {"p": partition, "f": path.name, "n": numbers, "e": errors, "t": texts},
        )
    return len(rows)


def _seek_line(handle, position: int) -> None:
    """Go to the line DuckDB reports at `position`: its start, or (as it reports some lines)
    the byte after it."""
    handle.seek(max(position - 1, 0))
    if position == 0 or handle.read(1) != b"\n":
        handle.seek(max(position - 1, 0))


def _record_file(
    con, spec: DatasetSpec, path: Path, size: int, partition: str, result: LoadResult
) -> None:
    con.execute(
        f"INSERT INTO {table(spec.name, 'raw_files')} BY NAME SELECT $p AS _partition, "
        "$f AS source_file, $s AS sha256, $b AS bytes, $c AS columns, $h AS has_header, "
        "$r AS rows, $m AS malformed_lines, $t AS loaded_at, $l AS landed_file, $n AS lines",
        {
            "p": partition,
            "f": str(path),
            "s": result.sha256,
            "b": size,
            "c": json.dumps(result.columns),
            "h": result.has_header,
            "r": result.rows,
            "m": result.malformed_lines,
            "t": datetime.now(UTC).replace(tzinfo=None),
            "l": result.landed_file,
            "n": result.lines,
        },
    )


def _refresh_raw_view(con, spec: DatasetSpec) -> None:
    """`<ds>.raw`: every line of every partition, as text, with file and line number."""
    files = con.execute(
        f"SELECT _partition, source_file, columns, has_header, landed_file "
        f"FROM {table(spec.name, 'raw_files')} WHERE landed_file IS NOT NULL ORDER BY _partition"
    ).fetchall()
    malformed = table(spec.name, "raw_malformed")
    parts = [
        _accepted_lines_sql(spec, partition, Path(source).name, json.loads(cols), header, landed)
        for partition, source, cols, header, landed in files
    ]
    spec_columns = ", ".join(f"NULL::VARCHAR AS {quote(c.name)}" for c in spec.columns)
    parts.append(
        f"SELECT _partition, _source_file, _row_number, _error, _line, {spec_columns} "
        f"FROM {malformed}"
    )
    con.execute(
        f"CREATE OR REPLACE VIEW {table(spec.name, 'raw')} AS " + " UNION ALL BY NAME ".join(parts)
    )


def _accepted_lines_sql(spec, partition, source, columns, has_header, landed) -> str:
    """The lines of one landed file the reader splits, numbered by their line in the file: their
    position, shifted by the malformed lines before them (read in one thread, so in order)."""
    reader = read_csv_sql(spec, columns, has_header, landed, parallel=False)
    shifts = (
        f"SELECT k, max(shift) AS shift FROM ({shift_keys_sql(spec, literal(partition))}) "
        "GROUP BY ALL"
    )
    missing = [c.name for c in spec.columns if c.name not in columns]
    selected = [f"s.{quote(c)}" for c in columns] + [
        f"NULL::VARCHAR AS {quote(c)}" for c in missing
    ]
    return (
        f"SELECT {literal(partition)} AS _partition, {literal(source)} AS _source_file, "
        "s.k + 1 + coalesce(t.shift, 0) AS _row_number, NULL::VARCHAR AS _error, "
        f"NULL::VARCHAR AS _line, {', '.join(selected)} "
        f"FROM (SELECT row_number() OVER () - 1 AS k, * FROM {reader} "
        # a filter on every field, so that a count decodes them and skips what the file holds
        f"WHERE length(concat({', '.join(quote(c) for c in columns)})) >= 0) s "
        f"ASOF LEFT JOIN ({shifts}) t ON s.k >= t.k"
    )


def shift_keys_sql(spec: DatasetSpec, partition_sql: str) -> str:
    """Per malformed line of the partition: `k`, the accepted lines before it, and `shift`, the
    malformed lines up to it. Accepted line k (from 0) is line k + 1 + the largest shift at or
    below k."""
    return (
        "SELECT _row_number - rank AS k, rank AS shift FROM (SELECT _row_number, "
        "row_number() OVER (ORDER BY _row_number) AS rank FROM "
        f"{table(spec.name, 'raw_malformed')} WHERE _partition = {partition_sql})"
    )
