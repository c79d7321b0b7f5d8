"""Labelled requests written as source rows read back, through real ingestion and validation,
as the values that were served with the labels as the target."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.labelled_rows import land, missing_columns, source_rows, source_text
from mlops_assets.lib.spec import parse_spec
from mlops_assets.lib.validation import validate_partition

SPEC = """
name: sales
source: sales.csv
read: {delimiter: ";", na_values: ["#N/A"]}
columns:
  - {name: Day, type: date, format: "%d.%m.%Y"}
  - {name: Store size, type: float, min: 0}
  - {name: Region, type: category, allowed: [north, south]}
  - {name: Promo, type: bool}
  - {name: Note, type: category, nullable: true, feature: false}
  - {name: Units, type: int, min: 0}
target: Units
task: regression
"""


def spec(text=SPEC):
    return parse_spec(text, Path("sales.yaml"))


def labelled() -> pd.DataFrame:
    """Two matched rows as `matched_sql(with_inputs=True)` gives them."""
    return pd.DataFrame(
        {
            "input:Day": pd.to_datetime(["2026-12-01", "2026-12-02"]),
            "input:Store size": [1250.5, None],
            "input:Region": ["north", "south"],
            "input:Promo": [True, False],
            "actual": [17.0, 4.0],
        }
    )


def test_labelled_requests_read_back_as_the_served_values(tmp_path):
    sales = spec(
        SPEC.replace("min: 0}\n  - {name: Region", "min: 0, nullable: true}\n  - {name: Region")
    )
    text = source_text(sales, source_rows(sales, labelled()))
    assert text.splitlines()[1] == "01.12.2026;1250.5;north;true;#N/A;17"
    path = tmp_path / "labelled.csv"
    path.write_text(text)
    (tmp_path / "data").mkdir()
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb")) as con:
        load_raw(con, sales, path, "labelled.csv")
        summary = validate_partition(con, sales, "labelled.csv")
        rows = con.execute(
            'SELECT Day, "Store size", Region, Promo, Note, Units FROM sales.validated '
            "ORDER BY _row_number"
        ).fetchall()
    assert (summary.rows, summary.valid) == (2, 2)
    assert [tuple(str(v) for v in row) for row in rows] == [
        ("2026-12-01", "1250.5", "north", "True", "None", "17"),
        ("2026-12-02", "None", "south", "False", "None", "4"),
    ]


def test_a_source_column_no_request_carries_is_named():
    strict = spec(SPEC.replace("nullable: true, feature: false", "feature: false"))
    assert missing_columns(strict) == ["Note"]
    assert missing_columns(spec()) == []  # Note may be left empty


def test_a_file_is_landed_once_and_marked_done(tmp_path):
    folder = tmp_path / "landing" / "sales"
    path = land(folder, "labelled-2026-12-01-v1.csv", "a\n1\n")
    assert path.read_text() == "a\n1\n"
    assert (folder / "labelled-2026-12-01-v1.csv.done").exists()
    assert land(folder, "labelled-2026-12-01-v1.csv", "a\n2\n") is None
    assert path.read_text() == "a\n1\n"
    assert sorted(p.name for p in folder.iterdir()) == [
        "labelled-2026-12-01-v1.csv", "labelled-2026-12-01-v1.csv.done"
    ]  # fmt: skip


def test_a_headerless_source_gets_no_header():
    sales = spec(SPEC.replace('read: {delimiter: ";"', 'read: {header: false, delimiter: ";"'))
    assert source_text(sales, source_rows(sales, labelled())).startswith("01.12.2026;")
