"""The broken-file corpus on a real DuckDB: each fault has one clear outcome, no row is lost."""

from pathlib import Path

import duckdb
import pytest

from mlops_assets.lib import quality
from mlops_assets.lib.ingest import FileRejected, load_raw
from mlops_assets.lib.validation import MissingColumns, check_columns, validate_partition
from mlops_assets.lib.warehouse import scalar

HEADER = "Sex,Length,Diameter,Height,Whole weight,Shucked weight,Viscera weight,Shell weight,Rings"
ROWS = [
    "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15",
    "M,0.35,0.265,0.09,0.2255,0.0995,0.0485,0.07,7",
    "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9",
    "I,0.425,0.3,0.095,0.3515,0.141,0.0775,0.12,8",
]


@pytest.fixture
def con(tmp_path):
    # a warehouse file, as the assets use: files land in the folder next to it
    (tmp_path / "data").mkdir()
    connection = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def abalone(builtin_specs):
    return builtin_specs["abalone"]


def write(tmp_path: Path, name: str, lines: list[str], raw: bytes = b"") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode() + raw)
    return path


def counts(con, partition):
    return tuple(
        scalar(con, f"SELECT count(*) FROM abalone.{t} WHERE _partition = $p", {"p": partition})
        for t in ("raw", "validated", "quarantine")
    )


def reasons(con, partition) -> list[str]:
    rows = con.execute(
        "SELECT _reasons FROM abalone.quarantine WHERE _partition = $p ORDER BY _row_number",
        {"p": partition},
    ).fetchall()
    return [row[0] for row in rows]


def ingest(con, spec, path, partition="p1"):
    load_raw(con, spec, path, partition)
    return validate_partition(con, spec, partition)


def test_clean_file_keeps_values_and_row_numbers(con, abalone, tmp_path):
    summary = ingest(con, abalone, write(tmp_path, "a.csv", [HEADER, *ROWS]))
    assert (summary.rows, summary.valid, summary.quarantined) == (4, 4, 0)
    first = con.execute(
        'SELECT _source_file, _row_number, Sex, "Whole weight", Rings FROM abalone.validated '
        "ORDER BY _row_number LIMIT 1"
    ).fetchall()[0]
    assert first == ("a.csv", 1, "M", 0.514, 15)


def test_headerless_uci_layout_is_read_by_position(con, abalone, tmp_path):
    summary = ingest(con, abalone, write(tmp_path, "abalone.data", ROWS))
    assert summary.valid == 4
    raw_text = scalar(con, "SELECT Length FROM abalone.raw WHERE _row_number = 1")
    assert raw_text == "0.455"  # raw keeps the text as read


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        ("M,abc,0.365,0.095,0.514,0.2245,0.101,0.15,15", "Length: 'abc' is not a valid float"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,", "Rings: missing value"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,NaN", "Rings: missing value"),
        ("X,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15", "Sex: 'X' is not an allowed value"),
        ("M,7.5,0.365,0.095,0.514,0.2245,0.101,0.15,15", "Length: 7.5 is above the spec maximum"),
        ("M,-1,0.365,0.095,0.514,0.2245,0.101,0.15,15", "Length: -1.0 is below the spec minimum"),
        ("M,inf,0.365,0.095,0.514,0.2245,0.101,0.15,15", "Length: inf is not a finite number"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15.5", "Rings: '15.5' is not a valid int"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15", "malformed line: Expected Number"),
        ("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15,3", "malformed line: Expected Number"),
    ],
)
def test_row_level_faults_are_quarantined_with_a_reason(con, abalone, tmp_path, bad_row, expected):
    path = write(tmp_path, "bad.csv", [HEADER, ROWS[0], bad_row, ROWS[1]])
    summary = ingest(con, abalone, path)
    assert counts(con, "p1") == (3, 2, 1)
    assert summary.quarantined == 1
    assert expected in reasons(con, "p1")[0]


def test_row_numbers_are_file_positions_around_malformed_lines(con, abalone, tmp_path):
    short, long = "M,0.4,0.3", ROWS[0] + ",3"
    lines = [HEADER, ROWS[0], short, long, ROWS[1], short, ROWS[2], ROWS[3]]
    ingest(con, abalone, write(tmp_path, "m.csv", lines))
    numbers = {
        name: [
            r[0]
            for r in con.execute(f"SELECT _row_number FROM abalone.{name} ORDER BY 1").fetchall()
        ]
        for name in ("validated", "quarantine")
    }
    assert numbers == {"validated": [1, 4, 6, 7], "quarantine": [2, 3, 5]}
    assert scalar(con, "SELECT Sex FROM abalone.validated WHERE _row_number = 6") == "F"


def test_every_reason_of_a_row_is_listed(con, abalone, tmp_path):
    ingest(con, abalone, write(tmp_path, "b.csv", [HEADER, "X,abc,0.365,0.095,0.514,0.2,0.1,9,"]))
    text = reasons(con, "p1")[0]
    for part in ("Sex:", "Length:", "Shell weight:", "Rings: missing value"):
        assert part in text


def test_non_utf8_bytes_and_truncated_last_line(con, abalone, tmp_path):
    path = write(
        tmp_path,
        "c.csv",
        [HEADER, *ROWS],
        raw=b"M,0.4\xff\xfe,0.3,0.1,0.5,0.2,0.1,0.1,9\nF,0.5,0.4",
    )
    summary = ingest(con, abalone, path)
    assert counts(con, "p1") == (6, 4, 2)
    assert summary.quarantined == 2
    quarantined = reasons(con, "p1")
    assert any("utf-8" in text.lower() or "unicode" in text.lower() for text in quarantined)
    assert any("Expected Number of Columns" in text for text in quarantined)


def test_duplicates_stay_valid_and_are_measured(con, abalone, tmp_path):
    ingest(con, abalone, write(tmp_path, "d.csv", [HEADER, ROWS[0], ROWS[0], ROWS[0], ROWS[1]]))
    assert counts(con, "p1") == (4, 4, 0)
    assert quality.duplicate_share(con, abalone) == (2, 4)


@pytest.mark.parametrize(
    ("lines", "message"),
    [([], "the file is empty"), ([HEADER], "the header has no data rows")],
)
def test_file_level_faults_name_the_file(con, abalone, tmp_path, lines, message):
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(FileRejected, match=f"broken.csv: {message}"):
        load_raw(con, abalone, path, "p1")


def test_headerless_file_with_wrong_field_count_is_rejected(con, abalone, tmp_path):
    with pytest.raises(FileRejected, match="expected 9 fields per line"):
        load_raw(con, abalone, write(tmp_path, "e.data", ["M,0.4,0.3"]), "p1")


def test_missing_and_extra_columns_are_reported(con, abalone, tmp_path):
    header = HEADER.replace(",Rings", ",Colour")
    lines = [header] + [row.rsplit(",", 1)[0] + ",red" for row in ROWS]
    load_raw(con, abalone, write(tmp_path, "f.csv", lines), "p1")
    columns = quality.file_columns(con, "abalone", "p1")
    with pytest.raises(MissingColumns, match=r"f.csv: missing column\(s\).*'Rings'"):
        check_columns(columns, abalone, "f.csv")
    report = quality.schema_report(columns, abalone)
    assert report.unexpected == ["Colour"] and report.missing == ["Rings"]


def test_reloading_a_partition_replaces_it(con, abalone, tmp_path):
    path = write(tmp_path, "g.csv", [HEADER, *ROWS])
    ingest(con, abalone, path, "p1")
    ingest(con, abalone, write(tmp_path, "h.csv", [HEADER, ROWS[0]]), "p2")
    ingest(con, abalone, path, "p1")
    assert counts(con, "p1") == (4, 4, 0)
    assert counts(con, "p2") == (1, 1, 0)


def test_header_names_match_spec_columns_in_any_order(con, abalone, tmp_path):
    fields = HEADER.split(",")
    reordered = [fields[-1], *fields[:-1]]
    rows = [",".join([r.split(",")[-1], *r.split(",")[:-1]]) for r in ROWS]
    ingest(con, abalone, write(tmp_path, "i.csv", [",".join(reordered), *rows]))
    assert scalar(con, "SELECT sum(Rings) FROM abalone.validated") == 39


def test_shared_abalone_file_accounts_for_every_row(con, abalone, shared_abalone):
    summary = ingest(con, abalone, shared_abalone, "abalone.csv")
    raw, valid, quarantined = counts(con, "abalone.csv")
    assert raw == 4177 == valid + quarantined == summary.rows


def test_pandera_confirms_validated_rows_and_catches_a_row_the_sql_let_through(
    con, abalone, tmp_path
):
    ingest(
        con, abalone, write(tmp_path, "j.csv", [HEADER, *ROWS, "X,abc,0.3,0.1,0.5,0.2,0.1,0.1,"])
    )
    checked, failures = quality.contract_failures(con, abalone, "p1")
    assert (checked, len(failures)) == (4, 0)
    con.execute(
        "INSERT INTO abalone.validated VALUES ('p1', 'j.csv', 99, 'X', 7.5, 0.3, 0.1, 0.5, 0.2, "
        "0.1, 0.1, 9)"
    )
    checked, failures = quality.contract_failures(con, abalone, "p1")
    assert checked == 5
    assert set(failures["column"]) == {"Sex", "Length"}
    assert set(failures["_row_number"]) == {99}


def test_a_rejected_reload_keeps_the_partition_as_it_was(con, abalone, tmp_path):
    ingest(con, abalone, write(tmp_path, "k.csv", [HEADER, *ROWS]))
    with pytest.raises(FileRejected):
        load_raw(con, abalone, write(tmp_path, "k2.csv", [HEADER]), "p1")
    assert counts(con, "p1") == (4, 4, 0)
    assert quality.file_columns(con, "abalone", "p1") == HEADER.split(",")
