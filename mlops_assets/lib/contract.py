"""A champion's record contract: the spec's input rules, with examples typical of its training rows.

The examples are what Swagger's "Try it out" sends and what the server's trial prediction uses,
so they come from the data (a median, the most frequent value), not from the ends of a range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from mlops_assets.lib.spec import DatasetSpec
from mlops_contract.record import RecordField, record_schema

SIGNIFICANT_DIGITS = 4


def _within(value: float, rule: RecordField) -> float:
    low = -math.inf if rule.minimum is None else rule.minimum
    high = math.inf if rule.maximum is None else rule.maximum
    return min(max(value, low), high)


def _most_frequent(values: pd.Series) -> Any:
    return values.mode().iloc[0]


def typical_value(values: pd.Series, rule: RecordField) -> Any:
    """A value typical of `values` that `rule` accepts, as plain Python; None when all are null.

    Numbers: the median (an int rounded, a float to 4 significant digits), kept inside the rule's
    range; categories, bools and any column with allowed values (a median need not be one of
    them): the most frequent value, ties to the smallest; dates: the median date as ISO text.
    """
    values = values.dropna()
    if values.empty:
        return None
    if rule.type == "bool":
        return bool(_most_frequent(values))
    if rule.type == "date":
        return pd.to_datetime(values).median().date().isoformat()
    if rule.allowed is not None or rule.type == "category":
        common = _most_frequent(values)
        if rule.type == "int":
            return int(common)
        return float(common) if rule.type == "float" else common
    median = float(values.astype("float64").median())
    if rule.type == "int":
        return int(_within(round(median), rule))
    return _within(float(f"{median:.{SIGNIFICANT_DIGITS}g}"), rule)


def typical_values(frame: pd.DataFrame, rules: tuple[RecordField, ...]) -> dict[str, Any]:
    """Per rule's column of `frame` (training rows), its typical value (see `typical_value`)."""
    return {rule.column: typical_value(frame[rule.column], rule) for rule in rules}


def input_contract(spec: DatasetSpec, training_inputs: pd.DataFrame) -> dict[str, Any]:
    """The manifest entry describing the request record: `input_schema`, the JSON Schema of the
    spec's input rules with examples from `training_inputs`. The server derives the `inputs`
    list of `/models` from it."""
    examples = typical_values(training_inputs, spec.input_rules)
    fields = tuple(
        dataclasses.replace(rule, example=examples[rule.column]) for rule in spec.input_rules
    )
    return {"input_schema": record_schema(spec.name, fields)}
