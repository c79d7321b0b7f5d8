"""Request validation in plain Python: one compiled checker per input field, no per-row models.

The spec's min/max are data-quality bounds the training data satisfied. Values outside them are
rejected (422) rather than extrapolated, because the model has never seen that region.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

MISSING = object()


def safe_text(text: str) -> str:
    """`text` with lone surrogates escaped (`\\ud800`), so it always encodes as UTF-8 JSON."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Invalid(Exception):
    """A value a field does not accept; the message is shown to the client."""


@dataclass(frozen=True)
class Field:
    name: str
    column: str
    type: str
    nullable: bool
    check: Callable[[Any], Any]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


def _bounded(value: float, spec: dict) -> None:
    low, high = spec.get("min"), spec.get("max")
    if low is not None and value < low:
        raise Invalid(f"must be >= {low}")
    if high is not None and value > high:
        raise Invalid(f"must be <= {high}")


def _allowed(value: Any, spec: dict) -> None:
    allowed = spec.get("allowed")
    # `True == 1` in Python, so compare types as well as values
    if allowed is not None and not any(
        value == option and type(value) is type(option) for option in allowed
    ):
        raise Invalid(f"must be one of {allowed}")


def _as_float(value: Any, spec: dict) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise Invalid("must be a finite number") from None
    if not math.isfinite(number):
        raise Invalid("must be a finite number")
    _bounded(number, spec)
    _allowed(
        number, {"allowed": [float(a) for a in spec["allowed"]]} if spec.get("allowed") else {}
    )
    return number


def _as_int(value: Any, spec: dict) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("must be a finite integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer")
    _bounded(value, spec)
    _allowed(value, spec)
    return value


def _as_category(value: Any, spec: dict) -> Any:
    if spec.get("allowed") is None:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if not value.isascii() and safe_text(value) is not value:
            # a lone surrogate could not be written to the prediction log
            raise Invalid("must be valid Unicode text (no lone surrogates)")
        return value
    _allowed(value, spec)
    return value


def _as_bool(value: Any, spec: dict) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _as_date(value: Any, spec: dict) -> str:
    if not isinstance(value, str):
        raise Invalid("must be an ISO date string (YYYY-MM-DD)")
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        raise Invalid("must be an ISO date string (YYYY-MM-DD)") from None
    return value


CONVERTERS = {
    "float": _as_float,
    "int": _as_int,
    "category": _as_category,
    "bool": _as_bool,
    "date": _as_date,
}


def compile_field(spec: dict) -> Field:
    convert = CONVERTERS.get(spec["type"])
    if convert is None:
        raise ValueError(f"input {spec['field']!r}: unsupported type {spec['type']!r}")
    nullable = bool(spec.get("nullable"))

    def check(value: Any) -> Any:
        if value is MISSING:
            if nullable:
                return None
            raise Invalid("field required")
        if value is None:
            if nullable:
                return None
            raise Invalid("must not be null")
        return convert(value, spec)

    return Field(spec["field"], spec["column"], spec["type"], nullable, check)


def compile_fields(inputs: list[dict]) -> tuple[Field, ...]:
    if not inputs:
        raise ValueError("the manifest declares no inputs")
    return tuple(compile_field(spec) for spec in inputs)


def validate_record(
    record: Any, fields: tuple[Field, ...], names: frozenset[str], prefix: str = ""
) -> tuple[list | None, list[FieldError]]:
    """One record as a row of converted values in field order, or every error it has."""
    if not isinstance(record, dict):
        return None, [FieldError(prefix.rstrip(".") or "(body)", "must be a JSON object")]
    row, errors = [], []
    for field in fields:
        try:
            row.append(field.check(record.get(field.name, MISSING)))
        except Invalid as exc:
            errors.append(FieldError(prefix + field.name, str(exc)))
    if len(record) > len(fields) or not names.issuperset(record):
        for key in record:
            if key not in names:
                errors.append(FieldError(prefix + safe_text(str(key)), "unknown field"))
    return (None if errors else row), errors


def validate_body(
    body: Any, fields: tuple[Field, ...]
) -> tuple[list[list], bool, list[FieldError]]:
    """(rows, is_batch, errors) for a body that is one record or a list of records."""
    names = frozenset(field.name for field in fields)
    if isinstance(body, list):
        if not body:
            return [], True, [FieldError("(body)", "empty list: send at least one record")]
        rows, errors = [], []
        for index, record in enumerate(body):
            row, record_errors = validate_record(record, fields, names, f"[{index}].")
            rows.append(row)
            errors.extend(record_errors)
        return rows, True, errors
    row, errors = validate_record(body, fields, names)
    return [row], False, errors
