"""One set of column rules: the SQL split and the pandera gate, both generated from the spec's
`RecordField`s, give the same verdict on every boundary value."""

from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from mlops_assets.lib import quality
from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.spec import parse_spec
from mlops_assets.lib.validation import validate_partition

SPEC = """
name: bounds
source: bounds.csv
columns:
  - {name: depth, type: float, min: -10, max: -1}
  - {name: count, type: int, min: 0, max: 5}
  - {name: kind, type: category, allowed: [a, b]}
  - {name: note, type: float, nullable: true, min: 0}
  - {name: y, type: float, nullable: true}
target: y
task: regression
"""
GOOD_ROW = {"depth": -5.0, "count": 2, "kind": "a", "note": 1.0, "y": 0.0}


@pytest.fixture(scope="module")
def spec():
    return parse_spec(SPEC, Path("bounds.yaml"))


def sql_accepts(spec, row: dict, tmp_path: Path) -> bool:
    text = ["" if value is None else str(value) for value in row.values()]
    path = tmp_path / "bounds.csv"
    path.write_text(",".join(row) + "\n" + ",".join(text) + "\n")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:  # files land beside it
        load_raw(con, spec, path, "p")
        return validate_partition(con, spec, "p").valid == 1


def pandera_accepts(spec, row: dict) -> bool:
    frame = quality.typed_frame(pd.DataFrame([row]), spec)
    try:
        quality.pandera_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors:
        return False
    return True


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),
        ({"depth": -10.0}, True),
        ({"depth": -10.001}, False),
        ({"depth": -1.0}, True),
        ({"depth": -0.999}, False),
        ({"count": 0}, True),
        ({"count": -1}, False),
        ({"count": 5}, True),
        ({"count": 6}, False),
        ({"kind": "b"}, True),
        ({"kind": "c"}, False),
        ({"note": None}, True),
        ({"note": 0.0}, True),
        ({"note": -0.5}, False),
        ({"y": None}, False),  # the target is never nullable, whatever its column says
    ],
)
def test_sql_and_pandera_agree_on_boundary_values(spec, tmp_path, change, valid):
    row = {**GOOD_ROW, **change}
    assert sql_accepts(spec, row, tmp_path) is valid
    assert pandera_accepts(spec, row) is valid
