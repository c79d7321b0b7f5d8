"""Realistic prediction traffic for demos: validated rows, optionally shifted, sent over HTTP,
and optionally their true targets sent back as labels (`POST /models/<ds>/feedback`)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.lib.features import query_features
from mlops_assets.lib.spec import DatasetSpec


def parse_shifts(items: list[str], spec: DatasetSpec) -> dict[str, float]:
    """`FEATURE=FACTOR` pairs (FEATURE is the API field name of a numeric input)."""
    numeric = {rule.name for rule in spec.input_rules if rule.type in ("float", "int")}
    shifts = {}
    for item in items:
        field, _, factor = item.partition("=")
        if field not in numeric:
            raise ValueError(f"--shift {item!r}: {field!r} is not a numeric input of {spec.name}")
        try:
            shifts[field] = float(factor)
        except ValueError:
            raise ValueError(f"--shift {item!r}: {factor!r} is not a number") from None
    return shifts


@dataclass(frozen=True)
class Sample:
    records: list[dict]  # request records, API field names
    clipped: int  # shifted values clipped to the spec's min/max
    actuals: list  # each record's true target


def sample_records(
    con: duckdb.DuckDBPyConnection,
    spec: DatasetSpec,
    rows: int,
    shifts: dict[str, float],
    seed: int | None = None,
) -> Sample:
    """`rows` request records drawn (with replacement) from the validated data, with their
    targets, and how many shifted values were clipped to the spec's min/max (the server rejects
    values outside it). Without a seed every call draws a new sample, so a second run sends
    other rows."""
    frame = query_features(con, spec)
    if frame.empty:
        raise ValueError(f"{spec.name}: no validated rows to sample; build the data set first")
    picked = frame.sample(n=rows, replace=True, random_state=seed)
    rules = spec.input_rules
    records = pd.DataFrame({rule.name: _sent(picked[rule.column], rule.type) for rule in rules})
    clipped = 0
    for rule in rules:
        if rule.name in shifts:
            shifted = records[rule.name] * shifts[rule.name]
            records[rule.name] = shifted.clip(rule.minimum, rule.maximum)
            clipped += int((records[rule.name] != shifted).sum())
    actuals = json.loads(picked[spec.target].to_json(orient="values"))
    return Sample(json.loads(records.to_json(orient="records")), clipped, actuals)


def _sent(values: pd.Series, kind: str):
    """A column's values as a client sends them: dates as ISO text."""
    if kind == "date":
        return pd.to_datetime(values).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    return values.to_numpy()


def wrong_labels(actuals: list, error_rate: float, seed: int | None = None) -> list:
    """`actuals` with a share `error_rate` replaced by another value seen in them (a label that
    is wrong, as real feedback sometimes is)."""
    rng = np.random.default_rng(seed)
    values = sorted(set(actuals), key=str)
    labels = list(actuals)
    if len(values) < 2:
        return labels
    for index in np.flatnonzero(rng.random(len(labels)) < error_rate):
        others = [value for value in values if value != labels[index]]
        labels[index] = others[rng.integers(len(others))]
    return labels


@dataclass
class Delivery:
    """What sending records did: requests and records counted apart, by HTTP status."""

    requests: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)  # labels sent back, by feedback status

    def describe(self) -> str:
        """E.g. `50 records in 1 request: 50 x HTTP 200`."""
        by_status = ", ".join(
            f"{self.records[status]} x HTTP {status}"
            + (f" ({_requests(count)})" if len(self.requests) > 1 else "")
            for status, count in sorted(self.requests.items())
        )
        total = sum(self.records.values())
        text = f"{total} records in {_requests(sum(self.requests.values()))}: {by_status}"
        if self.labels:
            sent = ", ".join(f"{n} x HTTP {status}" for status, n in sorted(self.labels.items()))
            text += f"; {sum(self.labels.values())} labels: {sent}"
        return text


def _requests(count: int) -> str:
    return f"{count} request" + ("" if count == 1 else "s")


def send(url: str, dataset: str, records: list[dict], batch: int = 50) -> Counter:
    """POST the records in lists of `batch`; the count of responses by status code."""
    return deliver(url, dataset, records, batch).requests


def deliver(
    url: str, dataset: str, records: list[dict], batch: int = 50, labels: list | None = None
) -> Delivery:
    """POST the records in lists of `batch`; requests and records by status code. With
    `labels` (one per record), each answered request's labels are sent back as feedback under
    the request id it was answered with."""
    delivery = Delivery()
    model = f"{url.rstrip('/')}/models/{dataset}"
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        status, answer = _post(f"{model}/predict", chunk)
        delivery.requests[status] += 1
        delivery.records[status] += len(chunk)
        if labels is not None and status == 200:
            feedback = [
                {"request_id": answer["request_id"], "row": row, "actual": actual}
                for row, actual in enumerate(labels[start : start + batch])
            ]
            delivery.labels[_post(f"{model}/feedback", feedback)[0]] += len(feedback)
    return delivery


def _post(endpoint: str, body) -> tuple[int, dict | None]:
    headers = {"Content-Type": "application/json"}
    if os.environ.get("MLOPS_API_KEY"):
        headers["X-API-Key"] = os.environ["MLOPS_API_KEY"]
    request = urllib.request.Request(
        endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
