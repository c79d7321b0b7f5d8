"""A spec's derived SQL computes columns; it cannot read files or URLs of the machine."""

from pathlib import Path

import duckdb
import pytest

from mlops_assets.build import build_dataset
from mlops_assets.components.project import project_specs
from mlops_assets.lib.features import DerivedColumnError, query_features
from mlops_assets.lib.spec import parse_spec
from mlops_assets.settings import load_settings
from mlops_assets_tests.reliability.synthetic_spec import SPEC, write_dataset


def spec_with(derived_sql: str):
    text = SPEC.format(name="synth", derived_sql=derived_sql.replace('"', '\\"'))
    return parse_spec(text, Path("synth.yaml"))


@pytest.fixture
def warehouse():
    """A real DuckDB warehouse with a validated table of three rows."""
    con = duckdb.connect(":memory:")
    con.execute("CREATE SCHEMA synth")
    con.execute(
        "CREATE TABLE synth.validated AS SELECT * FROM (VALUES "
        "('p', 'f', 2, 1.0, 10.0, 'a', 0.5), ('p', 'f', 1, 2.0, 20.0, 'b', 0.7), "
        "('q', 'g', 1, 3.0, 30.0, 'c', 0.9)) "
        't(_partition, _source_file, _row_number, x1, x2, "group", y)'
    )
    yield con
    con.close()


def test_derived_columns_are_computed_in_row_order(warehouse):
    frame = query_features(warehouse, spec_with("x1 + x2 + lag(x1) OVER (ORDER BY x1)"))
    assert frame["_row_number"].tolist() == [1, 2, 1]
    # lag over x1: the row with the smallest x1 (p, 2) has none
    assert frame["x_sum"].isna().tolist() == [False, True, False]
    assert frame["x_sum"].dropna().tolist() == [22.0 + 1.0, 33.0 + 2.0]
    assert list(frame.columns[-1:]) == ["x_sum"]
    assert len(query_features(warehouse, spec_with("x1 + x2"), "q")) == 1


@pytest.mark.parametrize(
    "sql",
    [
        "(SELECT content FROM read_text('/etc/hostname'))",
        "(SELECT count(*) FROM read_csv('/etc/passwd'))",
        "(SELECT count(*) FROM 'https://example.com/data.csv')",
    ],
)
def test_derived_sql_cannot_open_files_or_urls(warehouse, sql):
    with pytest.raises(DerivedColumnError) as error:
        query_features(warehouse, spec_with(sql))
    message = str(error.value)
    assert message.startswith("derived column x_sum: ")
    assert "external access is disabled" in message


def test_bad_derived_sql_names_the_column(warehouse):
    with pytest.raises(DerivedColumnError, match="derived column x_sum: .*no_such_column"):
        query_features(warehouse, spec_with("no_such_column + 1"))


@pytest.mark.slow
def test_a_build_with_a_spec_reading_a_file_fails_naming_the_column(
    settings, instance, tmp_path, monkeypatch
):
    specs = tmp_path / "specs"
    write_dataset(specs, rows=300, derived_sql="(SELECT content FROM read_text('/etc/hostname'))")
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs))
    settings = load_settings()
    outcome = build_dataset(project_specs(settings)["synth"], settings, instance)
    assert not outcome.success
    assert any(
        failure.startswith("step synth__features failed: synth: derived column x_sum: ")
        and "external access is disabled" in failure
        for failure in outcome.failures
    ), outcome.describe()
