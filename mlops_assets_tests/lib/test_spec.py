from pathlib import Path

import pytest

from mlops_assets.lib.spec import SpecError, api_name_for, parse_spec

GOOD = """
name: wine
source: data.csv
columns:
  - {name: fixed acidity, type: float, min: 0}
  - {name: type, type: category, allowed: [red, white]}
  - {name: quality, type: int, min: 0, max: 10}
target: quality
task: regression
"""


def test_builtin_specs_use_the_names_clients_send(builtin_specs):
    assert set(builtin_specs) >= {"iris", "diabetes", "abalone"}
    iris = builtin_specs["iris"]
    assert [c.field for c in iris.feature_columns] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert iris.column("species").allowed == ["setosa", "versicolor", "virginica"]
    abalone_fields = [c.field for c in builtin_specs["abalone"].feature_columns]
    assert "Whole_weight" in abalone_fields and "Shell_weight" in abalone_fields
    assert builtin_specs["abalone"].target == "Rings"


TASK = "task: regression"


def test_good_spec_defaults():
    spec = parse_spec(GOOD, Path("wine.yaml"))
    assert spec.column("fixed acidity").field == "fixed_acidity"
    assert spec.selection_metric == "r2" and spec.higher_is_better
    assert spec.gates.max_quarantine_share == 0.05
    assert [c.name for c in spec.feature_columns] == ["fixed acidity", "type"]
    assert spec.input_rules[1].allowed == ("red", "white")
    assert spec.search.backend == "grid"


def test_an_optuna_search_takes_trials_seconds_or_both():
    for budget in ("trials: 20", "seconds: 60", "trials: 20, seconds: 60"):
        text = GOOD + f"search: {{backend: optuna, {budget}}}\n"
        search = parse_spec(text, Path("wine.yaml")).search
        assert search.backend == "optuna"
        assert (search.trials, search.seconds) in ((20, None), (None, 60), (20, 60))


def test_api_names_are_identifiers():
    assert api_name_for("Whole weight") == "Whole_weight"
    assert api_name_for("1st-value") == "_1st_value"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("target: quality", "target: rings"), "(top level)", "target 'rings' is not a column"),
        (("task: regression", "task: clustering"), "task", "'classification' or 'regression'"),
        (("type: int, min: 0, max: 10", "type: int, min: 5, max: 1"), "columns.2", "greater"),
        (("type: float, min: 0", "type: text"), "columns.0.type", "Input should be"),
        (("task: regression", "task: regression\nmetric: f1_macro"), "(top level)", "metric"),
        (("task: regression", "task: regression\nsplit: {method: time}"), "split", "column"),
        (("source: data.csv", "source: data.csv\nsurprise: 1"), "surprise", "Extra inputs"),
        (("name: wine", "name: Wine!"), "name", "pattern"),
        ((TASK, f"{TASK}\nsearch: {{backend: optuna}}"), "search", "needs a budget"),
        ((TASK, f"{TASK}\nsearch: {{trials: 20}}"), "search", "`trials` and `seconds` are"),
        ((TASK, f"{TASK}\nsearch: {{backend: random}}"), "search.backend", "'grid' or 'optuna'"),
        (
            (TASK, f"{TASK}\nsearch: {{backend: optuna, trials: 0}}"),
            "search.trials",
            "greater than or equal to 1",
        ),
        (
            (TASK, f"{TASK}\nsearch: {{backend: optuna, seconds: 0}}"),
            "search.seconds",
            "greater than 0",
        ),
    ],
)
def test_bad_spec_names_file_and_field(change, field, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(SpecError) as error:
        parse_spec(text, Path("specs/wine.yaml"))
    assert str(error.value).startswith("specs/wine.yaml: field `")
    assert f"`{field}`" in str(error.value)
    assert message in str(error.value)


def test_spec_name_must_match_file_name():
    with pytest.raises(SpecError, match="must match the file name"):
        parse_spec(GOOD, Path("red_wine.yaml"))


def test_not_yaml_or_not_a_mapping():
    with pytest.raises(SpecError, match="wine.yaml: not valid YAML"):
        parse_spec("name: [unclosed", Path("wine.yaml"))
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        parse_spec("- a\n- b\n", Path("wine.yaml"))


def test_the_spec_folder_adds_data_sets_and_replaces_components(
    settings, tmp_path, builtin_specs, monkeypatch
):
    extra = tmp_path / "specs"
    extra.mkdir()
    (extra / "wine.yaml").write_text(GOOD)
    (extra / "iris.yaml").write_text(
        (Path(builtin_specs["iris"].path))
        .read_text()
        .replace("test_fraction: 0.25", "test_fraction: 0.3")
    )
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(extra))
    from mlops_assets.components.project import project_specs
    from mlops_assets.settings import load_settings

    specs = project_specs(load_settings())
    assert sorted(specs) == ["abalone", "diabetes", "iris", "wine"]
    assert specs["iris"].split.test_fraction == 0.3
