import duckdb
import pytest

from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.sources import fetch_source
from mlops_assets.lib.traffic import parse_shifts, sample_records
from mlops_assets.lib.validation import validate_partition


def test_shifts_name_numeric_api_fields(builtin_specs):
    abalone = builtin_specs["abalone"]
    assert parse_shifts(["Whole_weight=1.5", "Length=0.9"], abalone) == {
        "Whole_weight": 1.5,
        "Length": 0.9,
    }
    with pytest.raises(ValueError, match="'Sex' is not a numeric input"):
        parse_shifts(["Sex=2"], abalone)
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_shifts(["Length=x"], abalone)


def test_records_are_sampled_from_validated_rows_and_shifted(tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    con = duckdb.connect()
    load_raw(con, iris, fetch_source(iris, tmp_path), "iris.csv")
    validate_partition(con, iris, "iris.csv")
    plain, _ = sample_records(con, iris, 50, {}, seed=1)
    shifted, clipped = sample_records(con, iris, 50, {"petal_length": 2.0}, seed=1)
    assert set(plain[0]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert clipped == 0
    assert [r["petal_length"] * 2 for r in plain] == pytest.approx(
        [r["petal_length"] for r in shifted]
    )
    assert sample_records(con, iris, 50, {}, seed=1)[0] == plain  # a seed repeats a sample
    assert sample_records(con, iris, 50, {})[0] != sample_records(con, iris, 50, {})[0]
    too_far, clipped = sample_records(con, iris, 50, {"petal_length": 3.0}, seed=1)
    assert max(r["petal_length"] for r in too_far) == 15  # the spec's max: still a valid request
    assert clipped == sum(r["petal_length"] * 3 > 15 for r in plain) > 0
