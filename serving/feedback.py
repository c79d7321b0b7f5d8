"""Ground truth for served predictions: `POST /models/{name}/feedback`.

Each label names the `request_id` a prediction was answered with (the `X-Request-ID` header and
the prediction log's `request_id`) and the `actual` value of the target, with an optional
`observed_at` (ISO 8601); for a batch request, `row` (0-based, default 0) says which of its
records the label is for. Labels are appended off the request path, like predictions, to

    <feedback_dir>/<dataset>/<YYYY-MM-DD>.jsonl   (UTC date of receipt)

Nothing is matched or overwritten here: a label for a request that was never served is kept,
and a second label for the same id is kept beside the first; the pipeline's `<ds>/labels`
asset joins them to the prediction log and lets the latest one count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from mlops_contract.validation import FieldError

KEYS = frozenset({"request_id", "row", "actual", "observed_at"})
OPTIONAL = frozenset({"row", "observed_at"})
MAX_REQUEST_ID = 200


@dataclass(frozen=True)
class Labels:
    """One request's accepted labels, as the daily log writes them."""

    dataset: str
    model: str
    timestamp: str  # of receipt, UTC
    labels: list[dict]

    def lines(self) -> bytes:
        encode = msgspec.json.encode
        return b"".join(
            encode({"received_at": self.timestamp, "model": self.model, **label}) + b"\n"
            for label in self.labels
        )


def validate_feedback(
    body: Any, task: str, classes: list | None
) -> tuple[list[dict], list[FieldError]]:
    """(labels, errors) of a body that is one label object or a list of them."""
    if isinstance(body, list):
        if not body:
            return [], [FieldError("(body)", "empty list: send at least one label")]
        checked = [_label(item, task, classes, f"[{i}].") for i, item in enumerate(body)]
    else:
        checked = [_label(body, task, classes, "")]
    labels = [label for label, _ in checked]
    return labels, [error for _, errors in checked for error in errors]


def _label(item: Any, task: str, classes: list | None, prefix: str) -> tuple[dict, list]:
    if not isinstance(item, dict):
        return {}, [FieldError(prefix.rstrip(".") or "(body)", "must be a JSON object")]
    errors = [FieldError(f"{prefix}{key}", "unknown field") for key in item if key not in KEYS]
    label = {}
    checks = (
        ("request_id", _request_id),
        ("row", _row),
        ("actual", None),
        ("observed_at", _moment),
    )
    for key, check in checks:
        if key not in item:
            if key not in OPTIONAL:
                errors.append(FieldError(f"{prefix}{key}", "required"))
            continue
        value = item[key]
        problem = _actual(value, task, classes) if check is None else check(value)
        if problem:
            errors.append(FieldError(f"{prefix}{key}", problem))
        label[key] = int(value) if key == "row" and not problem else value
    return label, errors


def _request_id(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string (the request id the prediction was answered with)"
    if len(value) > MAX_REQUEST_ID:
        return f"longer than {MAX_REQUEST_ID} characters"
    return None


def _row(value: Any) -> str | None:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 0:
        return "must be a non-negative integer (the record's position in a batch request)"
    return None


def _moment(value: Any) -> str | None:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return f"must be an ISO 8601 date or time, got {value!r}"[:200]
    return None


def _actual(value: Any, task: str, classes: list | None) -> str | None:
    if task == "classification":
        if value in (classes or []) and not isinstance(value, bool | float):
            return None
        return f"must be one of the model's classes {classes}"[:300]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a finite number (the target's value)"
    return None
