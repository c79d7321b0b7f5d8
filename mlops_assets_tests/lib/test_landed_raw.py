"""The landed file as the raw record, on a real DuckDB file: content-addressed, read-only, shared
between partitions with the same bytes, and every line retrievable through `<ds>.raw`."""

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

import duckdb
import pytest

from mlops_assets.lib import ingest
from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.quality import line_account
from mlops_assets.lib.validation import validate_partition
from mlops_assets.lib.warehouse import scalar

HEADER = "Sex,Length,Diameter,Height,Whole weight,Shucked weight,Viscera weight,Shell weight,Rings"
ROWS = [
    "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15",
    "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9",
    "I,0.425,0.3,0.095,0.3515,0.141,0.0775,0.12,8",
]
SHORT = "M,0.4,0.3"
LONG = ROWS[0] + ",3"
BAD_VALUE = "X,0.450,0.365,0.095,0.514,0.2245,0.101,0.15,15"


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def con(data_dir):
    connection = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def abalone(builtin_specs):
    return builtin_specs["abalone"]


def write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def landed_file(con, partition: str) -> Path:
    return Path(
        scalar(
            con, "SELECT landed_file FROM abalone.raw_files WHERE _partition = $p", {"p": partition}
        )
    )


def test_landed_copy_is_content_addressed_read_only_and_recorded(con, abalone, data_dir, tmp_path):
    source = write(tmp_path, "a.csv", [HEADER, *ROWS])
    loaded = load_raw(con, abalone, source, "p1")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    landed = landed_file(con, "p1")
    assert landed == data_dir / "landed" / "abalone" / f"{digest}.csv"
    assert landed.read_bytes() == source.read_bytes()
    assert loaded.sha256 == digest
    assert scalar(con, "SELECT sha256 FROM abalone.raw_files") == digest
    assert not landed.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert [p.name for p in landed.parent.iterdir()] == [landed.name]  # no staging left over


def test_partitions_with_the_same_bytes_share_one_copy_until_neither_uses_it(
    con, abalone, tmp_path
):
    first = write(tmp_path, "a.csv", [HEADER, *ROWS])
    second = tmp_path / "b.csv"
    shutil.copyfile(first, second)
    load_raw(con, abalone, first, "p1")
    load_raw(con, abalone, second, "p2")
    shared = landed_file(con, "p1")
    assert landed_file(con, "p2") == shared
    load_raw(con, abalone, write(tmp_path, "c.csv", [HEADER, ROWS[0]]), "p1")  # p1 re-run
    assert shared.exists()  # p2 still uses it
    assert scalar(con, "SELECT count(*) FROM abalone.raw WHERE _partition = 'p2'") == 3
    load_raw(con, abalone, write(tmp_path, "d.csv", [HEADER, ROWS[1]]), "p2")
    assert not shared.exists()  # no partition uses it any more
    assert landed_file(con, "p1").exists() and landed_file(con, "p2").exists()


def test_raw_view_returns_every_line_with_file_and_line_number(con, abalone, tmp_path):
    lines = [HEADER, ROWS[0], SHORT, ROWS[1], LONG, ROWS[2]]
    load_raw(con, abalone, write(tmp_path, "m.csv", lines), "p1")
    rows = con.execute(
        "SELECT _source_file, _row_number, _error IS NOT NULL, _line, Sex, Rings "
        "FROM abalone.raw ORDER BY _row_number"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        ("m.csv", 1, False),
        ("m.csv", 2, True),
        ("m.csv", 3, False),
        ("m.csv", 4, True),
        ("m.csv", 5, False),
    ]
    assert [r[3] for r in rows if r[2]] == [SHORT, LONG]  # malformed lines kept as they were
    assert [(r[4], r[5]) for r in rows if not r[2]] == [("M", "15"), ("F", "9"), ("I", "8")]
    assert scalar(con, "SELECT malformed_lines FROM abalone.raw_files") == 2


def test_quarantine_keeps_the_line_text_and_file_positions(con, abalone, tmp_path):
    lines = [HEADER, ROWS[0], BAD_VALUE, SHORT, ROWS[1]]
    load_raw(con, abalone, write(tmp_path, "q.csv", lines), "p1")
    summary = validate_partition(con, abalone, "p1")
    assert (summary.rows, summary.valid, summary.quarantined) == (4, 2, 2)
    quarantined = con.execute(
        "SELECT _row_number, _line, Sex, Length, _reasons FROM abalone.quarantine ORDER BY 1"
    ).fetchall()
    assert [row[:2] for row in quarantined] == [(2, BAD_VALUE), (3, SHORT)]
    assert quarantined[0][2:4] == ("X", "0.450")  # values as read, not as typed
    assert "Sex: 'X' is not an allowed value" in quarantined[0][4]
    assert quarantined[1][4].startswith("malformed line: ")
    valid = con.execute("SELECT _row_number, Sex FROM abalone.validated ORDER BY 1").fetchall()
    assert valid == [(1, "M"), (4, "F")]


def test_a_failed_load_leaves_no_landed_file_behind(con, abalone, data_dir, tmp_path):
    load_raw(con, abalone, write(tmp_path, "a.csv", [HEADER, *ROWS]), "p1")
    kept = landed_file(con, "p1")
    with pytest.raises(ValueError, match="no data rows"):
        load_raw(con, abalone, write(tmp_path, "e.csv", [HEADER]), "p1")
    assert list((data_dir / "landed" / "abalone").iterdir()) == [kept]


def test_overwriting_the_source_in_place_leaves_the_record_and_the_source_writable(
    con, abalone, tmp_path
):
    source = write(tmp_path, "a.csv", [HEADER, *ROWS])
    kept = source.read_bytes()
    load_raw(con, abalone, source, "p1")
    assert source.stat().st_mode & stat.S_IWUSR  # the user's file is left as it was
    with source.open("r+b") as handle:  # `cp new.csv a.csv` rewrites the same inode
        handle.write(b"X")
    assert landed_file(con, "p1").read_bytes() == kept


def test_a_file_on_another_device_is_copied(con, abalone, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to land from")
    source = write(shm, f"landing-test-{tmp_path.name}.csv", [HEADER, *ROWS])
    try:
        load_raw(con, abalone, source, "p1")
        landed = landed_file(con, "p1")
        assert not landed.samefile(source)
        assert landed.read_bytes() == source.read_bytes()
        assert source.stat().st_mode & stat.S_IWUSR  # the source itself is left as it was
    finally:
        source.unlink()
    assert scalar(con, "SELECT count(*) FROM abalone.raw") == 3  # the copy outlives the source


def test_a_source_replaced_while_landing_keeps_its_own_header(con, abalone, tmp_path, monkeypatch):
    source = write(tmp_path, "a.csv", [HEADER, *ROWS])
    swapped = HEADER.replace("Length,Diameter", "Diameter,Length")
    copy = ingest._clone_or_copy

    def replaced_just_before_the_copy(path, target):  # a writer renames a new version in
        write(tmp_path, "a.csv", [swapped, "M,0.365,0.455,0.095,0.514,0.2245,0.101,0.15,15"])
        copy(path, target)

    monkeypatch.setattr(ingest, "_clone_or_copy", replaced_just_before_the_copy)
    load_raw(con, abalone, source, "p1")
    validate_partition(con, abalone, "p1")
    assert con.execute("SELECT Length, Diameter FROM abalone.validated").fetchall() == [
        (0.455, 0.365)
    ]


def test_a_byte_order_mark_is_not_part_of_the_first_name(con, abalone, tmp_path):
    source = tmp_path / "excel.csv"
    source.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([HEADER, *ROWS]).encode() + b"\r\n")
    load_raw(con, abalone, source, "p1")
    assert validate_partition(con, abalone, "p1").valid == 3


def test_a_quote_never_closed_leaves_every_line_accounted(con, abalone, tmp_path):
    opened = 'M,"0.4,0.3,0.1,0.5,0.2,0.1,0.15,9'
    lines = [HEADER, ROWS[0], opened, ROWS[1], ROWS[2], ROWS[0]]
    load_raw(con, abalone, write(tmp_path, "q.csv", lines), "p1")
    validate_partition(con, abalone, "p1")
    assert line_account(con, abalone, "p1").ok
    quarantined = con.execute(
        "SELECT _row_number, _line, _reasons FROM abalone.quarantine ORDER BY 1"
    ).fetchall()
    assert [(r[0], r[1]) for r in quarantined] == list(enumerate(lines[2:], start=2))
    assert "quote opened on line 2" in quarantined[1][2]


def test_the_line_account_finds_lines_in_no_table(con, abalone, tmp_path):
    load_raw(
        con, abalone, write(tmp_path, "a.csv", [HEADER, ROWS[0], "", ROWS[1], ROWS[2], ""]), "p1"
    )
    validate_partition(con, abalone, "p1")
    con.execute("DELETE FROM abalone.validated WHERE _row_number = 2")
    assert line_account(con, abalone, "p1") == (3, 2)


def test_a_long_malformed_line_is_kept_whole(con, abalone, tmp_path):
    long = LONG + "," + "y" * 20_000
    load_raw(con, abalone, write(tmp_path, "l.csv", [HEADER, ROWS[0], long, ROWS[1]]), "p1")
    validate_partition(con, abalone, "p1")
    assert scalar(con, "SELECT _line FROM abalone.quarantine") == long


def test_staging_copies_left_by_a_crash_are_removed(con, abalone, data_dir, tmp_path):
    folder = data_dir / "landed" / "abalone"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".landing-stale.csv", folder / ".landing-fresh.csv"
    stale.write_text("partial")
    fresh.write_text("another load copying now")
    old = time.time() - ingest.STALE_STAGING_SECONDS - 60
    os.utime(stale, (old, old))
    load_raw(con, abalone, write(tmp_path, "a.csv", [HEADER, *ROWS]), "p1")
    assert not stale.exists() and fresh.exists()


def test_an_overlong_first_line_or_too_many_columns_is_rejected_fast(
    con, abalone, tmp_path, monkeypatch
):
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 1000)
    wide = write(tmp_path, "wide.csv", [HEADER + ",x" * 600, ROWS[0]])
    with pytest.raises(ingest.FileRejected, match="wide.csv: the first line is longer than 1,000"):
        load_raw(con, abalone, wide, "p1")
    monkeypatch.setattr(ingest, "MAX_COLUMNS", 20)
    many = write(tmp_path, "many.csv", [HEADER + ",x" * 20, ROWS[0]])
    with pytest.raises(ingest.FileRejected, match="many.csv: 29 fields, more than 20"):
        load_raw(con, abalone, many, "p1")


def test_a_quote_closed_lines_later_is_quarantined_not_a_build_error(con, abalone, tmp_path):
    rows = [*ROWS, *ROWS, *ROWS]
    lines = [HEADER, *rows]
    lines[2] = lines[2].replace(",", ',"', 1)  # opened on row 2 ...
    lines[4] = '"' + lines[4]  # ... closed at the start of row 4, the comma inside
    load_raw(con, abalone, write(tmp_path, "q.csv", lines), "p1")
    summary = validate_partition(con, abalone, "p1")
    assert line_account(con, abalone, "p1").ok
    assert (summary.rows, summary.valid) == (9, 6)
    numbers = con.execute("SELECT _row_number FROM abalone.quarantine ORDER BY 1").fetchall()
    assert numbers == [(2,), (3,), (4,)]


def test_a_line_over_the_limit_mid_file_is_quarantined_and_numbers_do_not_shift(
    con, abalone, tmp_path, monkeypatch
):
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 1000)
    huge = "M," + "9" * 5000 + ",0.365,0.095,0.514,0.2245,0.101,0.15,15"
    load_raw(con, abalone, write(tmp_path, "h.csv", [HEADER, ROWS[0], huge, ROWS[1]]), "p1")
    validate_partition(con, abalone, "p1")
    assert line_account(con, abalone, "p1").ok
    assert con.execute("SELECT _row_number, _line FROM abalone.quarantine").fetchall() == [
        (2, huge)
    ]
    assert con.execute("SELECT _row_number FROM abalone.validated ORDER BY 1").fetchall() == [
        (1,),
        (3,),
    ]
