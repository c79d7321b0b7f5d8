"""The champion's record contract: examples typical of the training rows, one set of fields for the
manifest's `input_schema` and its legacy `inputs`."""

from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.lib.contract import input_contract, typical_values
from mlops_assets.lib.spec import parse_spec
from mlops_contract.record import fields_from_schema, inputs_from_fields

SPEC = """
name: shells
source: shells.csv
columns:
  - {name: Length, type: float, min: 0, max: 2}
  - {name: Rings, type: int, min: 0}
  - {name: Grade, type: int, allowed: [1, 3]}
  - {name: Sex, type: category, allowed: [M, F, I]}
  - {name: Fresh, type: bool}
  - {name: Caught, type: date, feature: true}
  - {name: Tag, type: category, nullable: true}
  - {name: Weight, type: float}
target: Weight
task: regression
"""


@pytest.fixture
def spec():
    return parse_spec(SPEC, Path("shells.yaml"))


def training_inputs() -> pd.DataFrame:
    """Model inputs as `features.model_inputs` hands them over: numbers (bools too) as floats."""
    return pd.DataFrame(
        {
            "Length": [0.2, 0.5, 0.6, 1.9],
            "Rings": [3.0, 9.0, 10.0, 29.0],
            "Grade": [1.0, 3.0, 3.0, 1.0],
            "Sex": ["F", "M", "I", "M"],
            "Fresh": [1.0, 0.0, 1.0, 1.0],
            "Caught": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-12-31"]),
            "Tag": [None, None, None, None],
        }
    )


def test_examples_are_the_medians_and_most_frequent_values_of_the_training_rows(spec):
    assert typical_values(training_inputs(), spec.input_rules) == {
        "Length": 0.55,  # median, not the middle (1.0) or the top (2.0) of the range
        "Rings": 10,  # median 9.5, rounded half to even
        "Grade": 1,  # allowed values: the most frequent (a tie: the smallest), never a median
        "Sex": "M",
        "Fresh": True,
        "Caught": "2024-02-15",
        "Tag": None,  # no value to go by: the record contract falls back to its rule
    }


def test_float_examples_are_rounded_to_four_significant_digits(spec):
    frame = training_inputs().assign(Length=[1.99996, 1.99997, 1.99998, 1.99999])
    assert typical_values(frame, spec.input_rules)["Length"] == 2.0
    frame = training_inputs().assign(Length=[0.123456] * 4)
    assert typical_values(frame, spec.input_rules)["Length"] == 0.1235


def test_the_contract_is_the_spec_rules_with_examples_stored_once(spec):
    contract = input_contract(spec, training_inputs())
    assert list(contract) == ["input_schema"]  # no second form of the same rules
    fields = fields_from_schema(contract["input_schema"])
    assert [field.name for field in fields] == [rule.name for rule in spec.input_rules]
    assert fields[0].example == 0.55 and fields[0].maximum == 2.0
    assert inputs_from_fields(fields) == inputs_from_fields(spec.input_rules)


def test_iris_examples_are_typical_flowers(builtin_specs):
    from sklearn.datasets import load_iris

    iris = builtin_specs["iris"]
    frame = load_iris(as_frame=True).data
    frame.columns = [rule.column for rule in iris.input_rules]
    properties = input_contract(iris, frame)["input_schema"]["properties"]
    assert {name: p["examples"] for name, p in properties.items()} == {
        "sepal_length": [5.8], "sepal_width": [3.0], "petal_length": [4.35], "petal_width": [1.3],
    }  # fmt: skip
