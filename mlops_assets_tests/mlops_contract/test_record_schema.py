"""The record contract: its JSON Schema round-trips, validates records like the rules, and the
trial row a bundle is checked with is always inside the rules (an entirely negative range too)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlops_assets.lib.contract import input_contract
from mlops_assets.lib.spec import parse_spec
from mlops_contract.bundle import write_bundle
from mlops_contract.record import (
    ContractError,
    RecordField,
    example_record,
    fields_from_schema,
    inputs_from_fields,
    manifest_fields,
    record_schema,
)
from mlops_contract.validation import compile_fields
from serving.model import example_row

FIELDS = (
    RecordField("length", "Length", "float", minimum=0.0, maximum=1.5, description="cm",
                example=0.52),
    RecordField("rings", "Rings", "int", nullable=True, minimum=1.0, example=9),
    RecordField("sex", "Sex", "category", allowed=("M", "F", "I"), example="M"),
    RecordField("code", "code", "category", nullable=True, allowed=(1, "x")),
    RecordField("fresh", "fresh", "bool", example=True),
    RecordField("day", "Day", "date", nullable=True, example="2024-05-01"),
    RecordField("note", "note", "category"),
)  # fmt: skip
RECORD = {"length": 0.52, "rings": 9, "sex": "M", "code": 1, "fresh": True, "day": "2024-05-01",
          "note": "ok"}  # fmt: skip


def test_schema_round_trips_to_the_same_fields():
    schema = json.loads(json.dumps(record_schema("AbaloneRecord", FIELDS)))
    assert fields_from_schema(schema) == FIELDS
    assert schema["required"] == ["length", "sex", "fresh", "note"]  # the non-nullable ones
    assert schema["properties"]["rings"]["type"] == ["integer", "null"]
    assert schema["properties"]["length"]["examples"] == [0.52]
    assert schema["properties"]["day"]["format"] == "date"
    assert schema["properties"]["sex"]["x-column"] == "Sex"


@pytest.fixture(scope="module")
def validator():
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = record_schema("AbaloneRecord", FIELDS)
    assert jsonschema_rs.meta.is_valid(schema)
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


@pytest.mark.parametrize(
    "change",
    [{}, {"rings": None, "code": None, "day": None}, {"length": 0.0}, {"length": 1.5},
     {"code": "x"}, {"rings": 1}],
)  # fmt: skip
def test_records_the_rules_accept_are_valid(validator, change):
    assert validator.is_valid({**RECORD, **change})


@pytest.mark.parametrize(
    "change",
    [{"length": -0.01}, {"length": 1.51}, {"length": None}, {"length": "0.5"}, {"rings": 0},
     {"rings": 2.5}, {"sex": "X"}, {"sex": None}, {"code": "1"}, {"fresh": 1},
     {"day": "2024-13-01"}, {"extra": 1}],
)  # fmt: skip
def test_records_the_rules_refuse_are_invalid(validator, change):
    assert not validator.is_valid({**RECORD, **change})


def test_non_nullable_fields_are_required_and_nullable_ones_may_be_left_out(validator):
    # the server reads a missing nullable field as null, so the published schema says the same
    nullable = {field.name for field in FIELDS if field.nullable}
    for name in RECORD:
        without = {k: v for k, v in RECORD.items() if k != name}
        assert validator.is_valid(without) is (name in nullable), name


def _schema_with(**change) -> dict:
    schema = record_schema("R", FIELDS[:1])
    schema["properties"]["length"].update(change)
    return schema


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "type: object"),
        ({"type": "object", "properties": {}}, "non-empty"),
        (_schema_with(**{"x-type": "text"}), "'length': needs `x-column`"),
        (_schema_with(type="string"), "does not fit `x-type` 'float'"),
        (_schema_with(minimum="0"), "`minimum`: must be a number"),
        (_schema_with(enum="M"), "`enum` must be a list"),
        (_schema_with(examples=[]), "`examples` must be a non-empty list"),
    ],
)
def test_a_malformed_schema_is_a_clear_contract_error(schema, message):
    with pytest.raises(ContractError, match=message):
        fields_from_schema(schema)


def test_example_record_takes_examples_and_fills_the_rest_inside_the_rules():
    assert example_record(FIELDS) == {
        "length": 0.52, "rings": 9, "sex": "M", "code": 1, "fresh": True, "day": "2024-05-01",
        "note": "",
    }  # fmt: skip
    ranges = (
        RecordField("both", "both", "float", minimum=-10.0, maximum=-1.0),
        RecordField("only_max", "only_max", "float", maximum=-1.0),
        RecordField("only_min", "only_min", "int", minimum=3.0),
        RecordField("neither", "neither", "int"),
        RecordField("odd", "odd", "int", minimum=-10.0, maximum=-2.0),
    )
    assert example_record(ranges) == {
        "both": -5.5, "only_max": -1.0, "only_min": 3, "neither": 0, "odd": -6,
    }  # fmt: skip


NEGATIVE_SPEC = """
name: trench
source: trench.csv
columns:
  - {name: depth, type: float, min: -10, max: -1}
  - {name: offset, type: int, max: -1}
  - {name: pressure, type: float}
target: pressure
task: regression
"""


def negative_range_data(rows: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"depth": rng.uniform(-10, -1, rows), "offset": rng.integers(-20, -1, rows).astype(float)}
    )
    return frame, (-frame["depth"] * 1.03 + rng.normal(0, 0.1, rows)).to_numpy()


def trench_manifest(with_contract: bool, frame: pd.DataFrame) -> dict:
    spec = parse_spec(NEGATIVE_SPEC, Path("trench.yaml"))
    legacy = {"inputs": inputs_from_fields(spec.input_rules)}  # a manifest written before
    inputs = input_contract(spec, frame) if with_contract else legacy
    return {
        "name": "trench", "version": "1", "task": "regression", "target": "pressure",
        **inputs, "classes": None, "metrics": {"test_r2": 0.9}, "selection_metric": "r2",
        "trained_at": "2025-01-01T00:00:00+00:00", "promoted_at": "2025-01-01T00:00:00+00:00",
        "mlflow_run_id": "run-1", "model_uri": "models:/trench/1", "data_version": "data-1",
        "dagster_run_id": "dagster-run",
    }  # fmt: skip


@pytest.mark.parametrize("with_contract", [True, False], ids=["input_schema", "legacy-inputs"])
def test_a_bundle_whose_range_is_entirely_negative_loads_and_serves(make_server, with_contract):
    frame, pressure = negative_range_data()
    model = LinearRegression().fit(frame, pressure)
    server = make_server()
    manifest = trench_manifest(with_contract, frame)
    write_bundle(server.models_dir / "trench", f"v1-{uuid.uuid4().hex[:8]}", model, manifest)
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        described = http.get("/models/trench").json()
        assert described["load_error"] is None
        response = http.post("/models/trench/predict", json={"depth": -4.0, "offset": -3})
    assert response.status_code == 200, response.text
    expected = model.predict(pd.DataFrame({"depth": [-4.0], "offset": [-3.0]}))[0]
    assert response.json()["prediction"] == pytest.approx(expected)


def test_the_trial_row_is_the_contracts_examples():
    frame, _ = negative_range_data()
    manifest = trench_manifest(True, frame)
    examples = [p["examples"][0] for p in manifest["input_schema"]["properties"].values()]
    assert example_row(compile_fields(manifest_fields(manifest))) == examples
    assert examples[0] == pytest.approx(frame["depth"].median(), abs=0.001)


@pytest.mark.slow
def test_the_pipeline_champion_carries_its_contract_with_typical_examples(
    settings, instance, builtin_specs
):
    from mlops_assets.build import build_dataset
    from mlops_contract.bundle import load_bundle

    iris = builtin_specs["iris"]
    assert build_dataset(iris, settings, instance).success
    manifest = load_bundle(settings.models_dir / "iris").manifest
    fields = fields_from_schema(manifest["input_schema"])
    assert "inputs" not in manifest  # derived from input_schema where served
    assert [(field.name, field.minimum, field.maximum) for field in fields] == [
        (rule.name, 0.0, 15.0) for rule in iris.input_rules
    ]
    # medians of the training rows (iris overall: 5.8, 3.0, 4.35, 1.3), not the range's 7.5 or 15
    examples = example_record(fields)
    assert 5.5 <= examples["sepal_length"] <= 6.1 and 2.9 <= examples["sepal_width"] <= 3.1
    assert 4.0 <= examples["petal_length"] <= 4.6 and 1.1 <= examples["petal_width"] <= 1.5
