"""Batch scoring with the champion bundle, through the same input contract as the HTTP API."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from mlops_contract.validation import validate_record
from serving.model import LoadedModel


@dataclass(frozen=True)
class Scored:
    predictions: pd.DataFrame  # one row per valid input row
    rejected: pd.DataFrame  # row_number, errors


def to_records(frame: pd.DataFrame, model: LoadedModel) -> list[dict]:
    """Rows as API records: spec column names become field names, other columns are dropped."""
    by_column = {field.column: field.name for field in model.fields}
    renamed = frame.rename(columns=by_column)
    kept = [field for field in model.fields if field.name in renamed.columns]
    records = renamed[[field.name for field in kept]].copy()
    for field in kept:
        if field.type in ("float", "int") and records[field.name].dtype == object:
            # one bad value makes pandas read a whole column as text; keep the numbers numbers
            records[field.name] = records[field.name].map(_number_or_text)
    return json.loads(records.to_json(orient="records", date_format="iso"))  # dates as text


def _number_or_text(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def score(frame: pd.DataFrame, model: LoadedModel) -> Scored:
    """Validate every row like a request body, then score the valid ones in one model call."""
    names = frozenset(field.name for field in model.fields)
    records = to_records(frame, model)
    # a series model's features come computed with the rows (`query_features`), not from history
    computed = frame[[f.name for f in model.series.features]] if model.series else frame[[]]
    rows, kept, rejected = [], [], []
    for number, record in enumerate(records, start=1):
        row, errors = validate_record(record, model.fields, names)
        if errors:
            rejected.append(
                {
                    "row_number": number,
                    "errors": "; ".join(f"{e.field}: {e.message}" for e in errors),
                }
            )
        else:
            rows.append(row + computed.iloc[number - 1].tolist())
            kept.append(number)
    predictions = pd.DataFrame({"row_number": kept})
    for position, field in enumerate(model.fields):
        predictions[field.name] = [row[position] for row in rows]
    if rows:
        output = model.predict(rows)
        predictions["prediction"] = output.values
        if output.probabilities is not None:
            predictions["probabilities"] = [json.dumps(p) for p in output.probabilities]
    return Scored(predictions, pd.DataFrame(rejected, columns=["row_number", "errors"]))
