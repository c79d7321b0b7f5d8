"""A date feature: how it is read from a request and how the model splits it into parts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_contract.dates import DATE_PARTS, date_part_names, date_parts
from mlops_contract.record import RecordField, fields_from_schema, record_schema
from mlops_contract.validation import compile_fields, record_from_query, validate_body

SPEC_FORMAT = RecordField("Date", "Date", "date", date_format="%m/%d/%Y")


def test_a_date_splits_into_the_parts_users_expect():
    parts = date_parts(pd.DataFrame({"Date": pd.to_datetime(["2023-10-01", "2024-12-30"])}))
    sunday, monday = (dict(zip(DATE_PARTS, row, strict=True)) for row in parts)
    assert sunday == {
        "year": 2023, "quarter": 4, "month": 10, "week_of_year": 39, "day": 1,
        "day_of_week": 6, "day_of_year": 274, "is_weekend": 1, "is_month_start": 1,
        "is_month_end": 0,
    }  # fmt: skip
    assert monday["week_of_year"] == 1  # ISO: 30 Dec 2024 is in week 1 of 2025
    assert monday["day_of_week"] == 0 and monday["day_of_year"] == 365


def test_a_missing_date_has_missing_parts_and_text_dates_read_the_same():
    text = date_parts(pd.DataFrame({"d": ["2023-10-01", None]}, dtype=object))
    typed = date_parts(pd.DataFrame({"d": pd.to_datetime(["2023-10-01", None])}))
    assert np.isnan(text[1]).all()
    assert np.array_equal(text, typed, equal_nan=True)
    assert date_part_names(None, ["d"])[:2] == ["d_year", "d_quarter"]


def test_the_spec_format_travels_in_the_schema_and_is_accepted_beside_iso():
    (field,) = fields_from_schema(record_schema("prices", (SPEC_FORMAT,)))
    assert field.date_format == "%m/%d/%Y"
    fields = compile_fields((field,))
    for sent in ("2023-10-01", "10/01/2023", "2023-10-01T09:30:00"):
        rows, _, errors = validate_body({"Date": sent}, fields)
        assert (rows, errors) == ([["2023-10-01"]], [])
    record, _ = record_from_query(b"Date=10%2F01%2F2023", fields)
    assert validate_body(record, fields)[0] == [["2023-10-01"]]


def test_a_bad_date_names_the_field_and_the_formats_it_takes():
    fields = compile_fields((SPEC_FORMAT,))
    for sent in ("2023-13-01", "13/01/2023", 20231001):
        (error,) = validate_body({"Date": sent}, fields)[2]
        assert error.field == "Date"
        assert "YYYY-MM-DD" in error.message and "%m/%d/%Y" in error.message
    iso_only = compile_fields((RecordField("day", "day", "date"),))
    (error,) = validate_body({"day": "10/01/2023"}, iso_only)[2]
    assert "%m" not in error.message
