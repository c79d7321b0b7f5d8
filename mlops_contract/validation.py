"""Request validation in plain Python: one compiled checker per contract field, no per-row models.

Every rule comes from the record contract's `RecordField`s. The min/max are data-quality bounds
the training data satisfied: values outside them are rejected (422) rather than extrapolated,
because the model has never seen that region.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl

from mlops_contract.record import RecordField

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
    """A contract field with its compiled checker: `check(value)` is the converted value."""

    contract: RecordField
    check: Callable[[Any], Any]

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def column(self) -> str:
        return self.contract.column

    @property
    def type(self) -> str:
        return self.contract.type

    @property
    def nullable(self) -> bool:
        return self.contract.nullable


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


def _bounded(value: float, rule: RecordField) -> None:
    low, high = rule.minimum, rule.maximum
    if low is not None and value < low:
        raise Invalid(f"must be >= {low}")
    if high is not None and value > high:
        raise Invalid(f"must be <= {high}")


def _allowed(value: Any, allowed: tuple | None) -> None:
    # `True == 1` in Python, so compare types as well as values
    if allowed is not None and not any(
        value == option and type(value) is type(option) for option in allowed
    ):
        raise Invalid(f"must be one of {list(allowed)}")


def _as_float(value: Any, rule: RecordField) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise Invalid("must be a finite number") from None
    if not math.isfinite(number):
        raise Invalid("must be a finite number")
    _bounded(number, rule)
    _allowed(number, tuple(float(a) for a in rule.allowed) if rule.allowed else None)
    return number


def _as_int(value: Any, rule: RecordField) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("must be a finite integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer")
    _bounded(value, rule)
    _allowed(value, rule.allowed)
    return value


def _as_category(value: Any, rule: RecordField) -> Any:
    if rule.allowed is None:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if not value.isascii() and safe_text(value) is not value:
            # a lone surrogate could not be written to the prediction log
            raise Invalid("must be valid Unicode text (no lone surrogates)")
        return value
    _allowed(value, rule.allowed)
    return value


def _as_bool(value: Any, rule: RecordField) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _as_date(value: Any, rule: RecordField) -> str:
    """An ISO date (a date-time's date part is read), or one in the spec's own format; the
    ISO text of the date either way."""
    expected = "an ISO date (YYYY-MM-DD)" + (
        f" or a date as {rule.date_format!r}" if rule.date_format else ""
    )
    if not isinstance(value, str):
        raise Invalid(f"must be {expected}")
    readers = [date.fromisoformat, lambda text: datetime.fromisoformat(text).date()]
    if rule.date_format:
        readers.append(lambda text: datetime.strptime(text, rule.date_format).date())
    for read in readers:
        try:
            return read(value).isoformat()
        except ValueError:
            continue
    raise Invalid(f"must be {expected}, got {value[:40]!r}")


CONVERTERS = {
    "float": _as_float,
    "int": _as_int,
    "category": _as_category,
    "bool": _as_bool,
    "date": _as_date,
}


def compile_field(rule: RecordField) -> Field:
    convert = CONVERTERS[rule.type]  # RecordField admits only these types
    nullable = rule.nullable

    def check(value: Any) -> Any:
        if value is MISSING:
            if nullable:
                return None
            raise Invalid("field required")
        if value is None:
            if nullable:
                return None
            raise Invalid("must not be null")
        return convert(value, rule)

    return Field(rule, check)


def compile_fields(rules: tuple[RecordField, ...]) -> tuple[Field, ...]:
    if not rules:
        raise ValueError("the contract declares no fields")
    return tuple(compile_field(rule) for rule in rules)


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


JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _json_text(option: Any) -> str:
    return option if isinstance(option, str) else json.dumps(option)


def parse_text(text: str, rule: RecordField) -> Any:
    """A query-string value as the JSON value it stands for under `rule`. Text that does not
    parse stays text, so validation refuses it with the message a wrong JSON type gets."""
    if text == "" and rule.nullable:
        return None
    if rule.type in ("float", "int") and JSON_NUMBER.fullmatch(text):
        is_integer = text.lstrip("-").isdigit()
        return int(text) if is_integer and rule.type == "int" else float(text)
    if rule.type == "bool" and text in ("true", "false"):
        return text == "true"
    if rule.allowed:
        return next((option for option in rule.allowed if _json_text(option) == text), text)
    return text


def record_from_query(query: bytes, fields: tuple[Field, ...]) -> tuple[dict, list[FieldError]]:
    """The record a query string (`field=value&...`) stands for, and the parameters given twice."""
    by_name = {field.name: field.contract for field in fields}
    record: dict[str, Any] = {}
    errors = []
    pairs = parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
    for name, text in pairs:
        if name in record:
            errors.append(FieldError(safe_text(name), "given more than once"))
            continue
        rule = by_name.get(name)
        record[name] = text if rule is None else parse_text(text, rule)
    return record, errors
