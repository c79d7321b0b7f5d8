"""The MLflow scoring protocol's request formats, turned into plain records."""

from __future__ import annotations

from typing import Any

from mlops_contract.validation import safe_text

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# what MLflow's scoring server accepts in `dataframe_split` (`index` is read and ignored)
SPLIT_KEYS = ("columns", "data", "index")


class ScoringFormatError(ValueError):
    pass


def _columnar_to_records(columns: dict) -> list[dict]:
    lengths = {len(values) for values in columns.values() if isinstance(values, list)}
    if len(lengths) != 1 or len(columns) != sum(isinstance(v, list) for v in columns.values()):
        raise ScoringFormatError("columnar `inputs` need lists of one common length")
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _split_to_records(split: Any) -> list:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
        raise ScoringFormatError("`dataframe_split` needs `columns` (a list) and `data`")
    unknown = [safe_text(str(key)) for key in split if key not in SPLIT_KEYS]
    if unknown:
        raise ScoringFormatError(
            f"`dataframe_split` has unknown key(s) {unknown}; allowed: {list(SPLIT_KEYS)}"
        )
    columns, data = split["columns"], split.get("data")
    if not all(isinstance(column, str) for column in columns):
        raise ScoringFormatError("`dataframe_split.columns` must be a list of field names")
    if not isinstance(data, list):
        raise ScoringFormatError("`dataframe_split.data` must be a list of rows")
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ScoringFormatError(
                f"`dataframe_split.data[{index}]` must be a list of {len(columns)} values"
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def records_from(body: Any) -> list:
    """The records of an MLflow `/invocations` body (one of FORMATS as the only key)."""
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in FORMATS:
        raise ScoringFormatError(f"the body must be an object with exactly one of {list(FORMATS)}")
    kind, payload = next(iter(body.items()))
    if kind == "dataframe_split":
        return _split_to_records(payload)
    if kind == "inputs" and isinstance(payload, dict):
        return _columnar_to_records(payload)
    if not isinstance(payload, list):
        raise ScoringFormatError(f"`{kind}` must be a list of records")
    return payload


def rename_columns(records: list, column_to_field: dict[str, str]) -> list:
    """MLflow clients send the model's column names ("Whole weight"); map them to API fields."""
    return [
        {column_to_field.get(key, key): value for key, value in record.items()}
        if isinstance(record, dict)
        else record
        for record in records
    ]
