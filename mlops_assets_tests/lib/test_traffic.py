import duckdb
import pytest

from mlops_assets.lib.ingest import load_raw
from mlops_assets.lib.sources import fetch_source
from mlops_assets.lib.spec import parse_spec
from mlops_assets.lib.traffic import parse_shifts, sample_records, wrong_labels
from mlops_assets.lib.validation import validate_partition
from mlops_contract.validation import compile_fields, validate_body


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
    plain = sample_records(con, iris, 50, {}, seed=1).records
    shifted_sample = sample_records(con, iris, 50, {"petal_length": 2.0}, seed=1)
    shifted, clipped = shifted_sample.records, shifted_sample.clipped
    assert set(plain[0]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert clipped == 0
    assert [r["petal_length"] * 2 for r in plain] == pytest.approx(
        [r["petal_length"] for r in shifted]
    )
    assert sample_records(con, iris, 50, {}, seed=1).records == plain  # a seed repeats a sample
    assert sample_records(con, iris, 50, {}).records != sample_records(con, iris, 50, {}).records
    too_far_sample = sample_records(con, iris, 50, {"petal_length": 3.0}, seed=1)
    too_far, clipped = too_far_sample.records, too_far_sample.clipped
    assert max(r["petal_length"] for r in too_far) == 15  # the spec's max: still a valid request
    assert clipped == sum(r["petal_length"] * 3 > 15 for r in plain) > 0


def test_each_record_comes_with_its_true_target(tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    con = duckdb.connect()
    load_raw(con, iris, fetch_source(iris, tmp_path), "iris.csv")
    validate_partition(con, iris, "iris.csv")
    sample = sample_records(con, iris, 200, {}, seed=2)
    assert len(sample.actuals) == 200
    # in iris the species is a function of the petals: small petals are setosa
    for record, actual in zip(sample.records, sample.actuals, strict=True):
        assert (record["petal_length"] < 2.5) == (actual == "setosa")


def test_a_share_of_the_labels_can_be_made_wrong():
    actuals = ["a", "b", "c"] * 400
    labels = wrong_labels(actuals, 0.25, seed=1)
    wrong = sum(label != actual for label, actual in zip(labels, actuals, strict=True))
    assert 0.2 < wrong / len(actuals) < 0.3
    assert set(labels) == {"a", "b", "c"}
    assert wrong_labels(actuals, 0.0) == actuals and wrong_labels(actuals, 0.25, seed=1) == labels


def test_a_date_input_is_sent_as_iso_text_the_server_accepts(tmp_path):
    dated = parse_spec(
        "name: visits\nsource: visits.csv\ncolumns:\n  - {name: Day, type: date}\n"
        "  - {name: Count, type: int}\ntarget: Count\ntask: regression\n",
        tmp_path / "visits.yaml",
    )
    (tmp_path / "visits.csv").write_text("Day,Count\n2026-03-01,4\n2026-03-02,7\n")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    load_raw(con, dated, tmp_path / "visits.csv", "visits.csv")
    validate_partition(con, dated, "visits.csv")
    records = sample_records(con, dated, 20, {}, seed=3).records
    assert {r["Day"] for r in records} <= {"2026-03-01", "2026-03-02"}
    fields = compile_fields(dated.input_rules)
    assert all(not validate_body(r, fields)[2] for r in records)
