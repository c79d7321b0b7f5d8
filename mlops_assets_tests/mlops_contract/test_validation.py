"""Validation and frame building as plain functions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlops_contract.record import fields_from_inputs
from mlops_contract.validation import compile_fields, record_from_query, validate_body
from serving.batcher import _split, _take_batch
from serving.model import Prediction, to_frame
from serving.scoring import ScoringFormatError, records_from

INPUTS = [
    {"field": "x", "column": "x col", "type": "float", "nullable": False, "min": 0, "max": 1,
     "allowed": None, "description": ""},
    {"field": "n", "column": "n", "type": "int", "nullable": True, "min": None, "max": None,
     "allowed": [1, 2], "description": ""},
    {"field": "c", "column": "c", "type": "category", "nullable": False, "min": None, "max": None,
     "allowed": ["a", "b"], "description": ""},
    {"field": "f", "column": "f", "type": "bool", "nullable": False, "min": None, "max": None,
     "allowed": None, "description": ""},
]  # fmt: skip
FIELDS = compile_fields(fields_from_inputs(INPUTS))
GOOD = {"x": 0.5, "n": 2, "c": "a", "f": True}


def errors_of(body) -> dict[str, str]:
    return {error.field: error.message for error in validate_body(body, FIELDS)[2]}


def test_valid_record_converts_in_field_order():
    rows, is_batch, errors = validate_body({"x": 1, "c": "b", "f": False}, FIELDS)
    assert rows == [[1.0, None, "b", False]] and not is_batch and not errors
    assert validate_body({**GOOD, "n": 1.0}, FIELDS)[0] == [[0.5, 1, "a", True]]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"x": math.nan}, {"x": "must be a finite number"}),
        ({"x": math.inf}, {"x": "must be a finite number"}),
        ({"x": 10**400}, {"x": "must be a finite number"}),
        ({"x": 1.5}, {"x": "must be <= 1"}),
        ({"x": False}, {"x": "must be a number"}),
        ({"n": True}, {"n": "must be an integer"}),
        ({"n": 3}, {"n": "must be one of [1, 2]"}),
        ({"n": 1.5}, {"n": "must be an integer"}),
        ({"c": "z"}, {"c": "must be one of ['a', 'b']"}),
        ({"c": None}, {"c": "must not be null"}),
        ({"f": 1}, {"f": "must be true or false"}),
        ({"extra": 1}, {"extra": "unknown field"}),
    ],
)
def test_each_bad_value_is_named(change, expected):
    assert errors_of({**GOOD, **change}) == expected


def test_all_errors_of_all_records_are_reported():
    body = [GOOD, {"x": -1, "c": "a"}, "nope"]
    assert errors_of(body) == {
        "[1].x": "must be >= 0",
        "[1].f": "field required",
        "[2]": "must be a JSON object",
    }
    assert errors_of([]) == {"(body)": "empty list: send at least one record"}


def test_frame_uses_column_names_and_dtypes():
    rows, _, _ = validate_body([GOOD, {**GOOD, "n": None}], FIELDS)
    frame = to_frame(rows, FIELDS)
    assert list(frame.columns) == ["x col", "n", "c", "f"]
    assert frame["x col"].dtype == "float64" and frame["f"].dtype == bool
    assert frame["n"].isna().tolist() == [False, True] and frame["c"].dtype == object
    single = to_frame([[0.5, 2, "a", True]], FIELDS)
    assert single["n"].dtype == "int64"
    pd.testing.assert_frame_equal(frame.iloc[:1], to_frame(rows[:1], FIELDS), check_dtype=False)


def test_mlflow_formats():
    split = {"dataframe_split": {"columns": ["x", "c"], "data": [[0.1, "a"], [0.2, "b"]]}}
    assert records_from(split) == [{"x": 0.1, "c": "a"}, {"x": 0.2, "c": "b"}]
    assert records_from({"inputs": {"x": [1, 2]}}) == [{"x": 1}, {"x": 2}]
    assert records_from({"instances": [GOOD]}) == [GOOD]
    for bad in (
        {"rows": []},
        {"instances": 3},
        {"dataframe_split": {"columns": ["x"], "data": [[1, 2]]}},
        {"dataframe_split": {"columns": [{"x": 1}], "data": [[1]]}},
    ):
        with pytest.raises(ScoringFormatError):
            records_from(bad)


class Job:
    def __init__(self, model, rows):
        self.model, self.rows = model, rows


def test_batches_never_mix_models_and_respect_max_rows():
    from collections import deque

    old, new = object(), object()
    pending = deque([Job(old, [1, 2]), Job(old, [3]), Job(new, [4]), Job(new, [5] * 10)])
    assert [job.rows for job in _take_batch(pending, 100)] == [[1, 2], [3]]
    assert [job.rows for job in _take_batch(pending, 5)] == [[4]]
    assert [job.rows for job in _take_batch(pending, 5)] == [[5] * 10]  # a big job goes whole
    parts = _split(Prediction([1, 2, 3], [{"a": 1.0}] * 3), [2, 1])
    assert parts[0].values == [1, 2] and parts[1].values == [3] and len(parts[1].probabilities) == 1


def query_errors(query: str) -> dict[str, str]:
    record, errors = record_from_query(query.encode(), FIELDS)
    return {e.field: e.message for e in errors + validate_body(record, FIELDS)[2]}


def test_query_values_parse_per_the_contract_type():
    record, errors = record_from_query(b"x=0.5&n=&c=b&f=true", FIELDS)
    assert record == {"x": 0.5, "n": None, "c": "b", "f": True} and not errors
    assert validate_body(record, FIELDS)[0] == [[0.5, None, "b", True]]
    assert record_from_query(b"n=2&f=false&x=1e-1", FIELDS)[0] == {"n": 2, "f": False, "x": 0.1}
    assert record_from_query(b"x=1&c=b&f=true", FIELDS)[0]["x"] == 1.0  # n may be left out


@pytest.mark.parametrize(
    "query, expected",
    [
        ("x=&c=a&f=true", {"x": "must be a number"}),  # empty is null only when nullable
        ("x=0x1&c=a&f=true", {"x": "must be a number"}),
        ("x=nan&c=a&f=true", {"x": "must be a number"}),
        ("x=1&n=1.5&c=a&f=true", {"n": "must be an integer"}),
        ("x=1&n=3&c=a&f=true", {"n": "must be one of [1, 2]"}),
        ("x=1&c=a&f=1", {"f": "must be true or false"}),
        ("x=1&c=a&f=True", {"f": "must be true or false"}),
        ("x=1&x=0&c=a&f=true", {"x": "given more than once"}),
        ("x=1&c=a&f=true&y=2", {"y": "unknown field"}),
    ],
)
def test_query_values_that_do_not_parse_get_the_json_type_error(query, expected):
    assert query_errors(query) == expected
