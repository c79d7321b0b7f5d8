"""Ground truth for served predictions: labels sent to `POST /models/<ds>/feedback` (the
server's `feedback/<ds>/*.jsonl`) and files of delayed labels dropped in `labels/<ds>/` (CSV or
JSON Lines with `request_id`, `actual` and optionally `observed_at`, `row`).

Both folders only ever grow, so `<ds>.labels` is rebuilt from all of them: every label is kept,
the latest received for a (request id, row) is the `current` one, and a label whose request was
never served is kept and counted as unmatched. A line that cannot be a label goes to
`<ds>.labels_rejected` with the reason, never away.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import quote, scalar, table, table_exists

LABEL_FILES = ("*.csv", "*.jsonl", "*.json")


@dataclass(frozen=True)
class LabelSummary:
    labels: int  # every label kept, superseded ones included
    current: int
    matched: int  # current labels whose request is in the prediction log
    rejected: int
    coverage: float | None  # share of logged predictions that have a label
    median_delay_s: float | None  # from the prediction to the label's receipt


def label_files(feedback_dir: Path, drop_dir: Path) -> list[Path]:
    """The files labels are read from: the server's log, then dropped files, in name order."""
    found = sorted(feedback_dir.glob("*.jsonl")) if feedback_dir.is_dir() else []
    if drop_dir.is_dir():
        found += sorted(p for pattern in LABEL_FILES for p in drop_dir.glob(pattern))
    return [path for path in found if not path.name.startswith(".")]


def read_lines(path: Path) -> list[tuple[int, str, dict | None]]:
    """(line number, text, record or None when it is not a JSON object / CSV row)."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [
            (index + 2, ",".join(row.values()), dict(row))
            for index, row in enumerate(frame.to_dict("records"))
        ]
    rows = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            rows.append((number, line.rstrip("\n"), record if isinstance(record, dict) else None))
    return rows


def collect(
    spec: DatasetSpec, files: list[Path], from_api: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labels, rejected) of every line of `files`; lines under `from_api` came from the server."""
    kept, rejected = [], []
    for path in files:
        api = path.parent == from_api
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
        for number, text, record in read_lines(path):
            source = f"{'api' if api else 'file'}:{path.name}:{number}"
            label, reason = _label(spec, record, received)
            if reason:
                rejected.append({"source": source, "line": text[:10_000], "reason": reason})
            else:
                kept.append({**label, "source": source})
    columns = ["request_id", "row", "actual", "observed_at", "received_at", "source"]
    return pd.DataFrame(kept, columns=columns), pd.DataFrame(
        rejected, columns=["source", "line", "reason"]
    )


def _label(spec: DatasetSpec, record: dict | None, received: str) -> tuple[dict, str | None]:
    if record is None:
        return {}, "not a JSON object"
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        return {}, "request_id: missing"
    row = record.get("row") or 0
    try:
        row = int(row)
    except (TypeError, ValueError):
        return {}, f"row: not an integer: {row!r}"
    actual, reason = _actual(spec, record.get("actual"))
    if reason:
        return {}, f"actual: {reason}"
    moments = []
    for key, default in (("observed_at", None), ("received_at", received)):
        value = record.get(key) or default
        try:
            moments.append(None if value is None else _utc(value))
        except ValueError:
            return {}, f"{key}: not an ISO 8601 date or time: {value!r}"
    return {"request_id": request_id, "row": row, "actual": actual,
            "observed_at": moments[0], "received_at": moments[1]}, None  # fmt: skip


def _utc(value: str) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _actual(spec: DatasetSpec, value) -> tuple[object, str | None]:
    if value is None or value == "":
        return None, "missing"
    if spec.task == "regression":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"not a number: {value!r}"
        return (number, None) if math.isfinite(number) else (None, f"not finite: {value!r}")
    allowed = spec.column(spec.target).allowed
    if allowed is not None and str(value) not in {str(option) for option in allowed}:
        return None, f"not one of the target's values {allowed}: {value!r}"
    return str(value), None


def store(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, labels, rejected) -> LabelSummary:
    """Replace `<ds>.labels` and `<ds>.labels_rejected` with what the files hold now."""
    actual = "DOUBLE" if spec.task == "regression" else "VARCHAR"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.name)}")
    con.register("_labels", labels)
    con.register("_rejected", rejected)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {table(spec.name, 'labels')} AS "
            "SELECT request_id, CAST(row AS INTEGER) AS row, CAST(actual AS "
            f"{actual}) AS actual, CAST(observed_at AS TIMESTAMPTZ) AS observed_at, "
            "CAST(received_at AS TIMESTAMPTZ) AS received_at, source, "
            "row_number() OVER (PARTITION BY request_id, row ORDER BY received_at DESC, "
            "source DESC) = 1 AS current FROM _labels"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE {table(spec.name, 'labels_rejected')} AS "
            "SELECT CAST(source AS VARCHAR) AS source, CAST(line AS VARCHAR) AS line, "
            "CAST(reason AS VARCHAR) AS reason FROM _rejected"
        )
    finally:
        con.unregister("_labels")
        con.unregister("_rejected")
    return summarize(con, spec, len(rejected))


INPUT_PREFIX = "input:"  # a matched row's model inputs, named apart from the label's columns


def matched_sql(spec: DatasetSpec, with_inputs: bool = False) -> str:
    """Current labels joined to the prediction (the record at `row` of its request); with
    `with_inputs`, the record's model inputs too, as `input:<column>`."""
    log = table(spec.name, "prediction_log")
    inputs = "".join(
        f", s.{quote(c.name)} AS {quote(INPUT_PREFIX + c.name)}" for c in spec.feature_columns
    )
    return (
        "WITH served AS (SELECT *, CAST(probabilities AS VARCHAR) AS probabilities_text, "
        f"row_number() OVER (PARTITION BY request_id ORDER BY rowid) - 1 AS row FROM {log}) "
        "SELECT l.*, s.timestamp, s.model, s.version, s.prediction, "
        f"s.probabilities_text AS probabilities{inputs if with_inputs else ''} FROM "
        f"{table(spec.name, 'labels')} l JOIN served s USING (request_id, row) WHERE l.current"
    )


def summarize(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, rejected: int) -> LabelSummary:
    labels_table = table(spec.name, "labels")
    total = scalar(con, f"SELECT count(*) FROM {labels_table}")
    current = scalar(con, f"SELECT count(*) FROM {labels_table} WHERE current")
    matched, coverage, delay = 0, None, None
    if table_exists(con, spec.name, "prediction_log"):
        matched, delay = con.execute(
            "SELECT count(*), median(epoch(received_at) - epoch(timestamp)) "
            f"FROM ({matched_sql(spec)})"
        ).fetchone()
        served = scalar(con, f"SELECT count(*) FROM {table(spec.name, 'prediction_log')}")
        coverage = matched / served if served else None
    return LabelSummary(total, current, matched, rejected, coverage,
                        None if delay is None else float(delay))  # fmt: skip


def labelled_days(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, str]:
    """Per UTC day of the served prediction, a digest of that day's current matched labels
    (request, row, actual, receipt): a day whose digest changes has new live evidence."""
    if not (
        table_exists(con, spec.name, "labels") and table_exists(con, spec.name, "prediction_log")
    ):
        return {}
    rows = con.execute(
        "SELECT strftime(CAST(timezone('UTC', timestamp) AS DATE), '%Y-%m-%d'), count(*), "
        "bit_xor(hash(request_id, row, CAST(actual AS VARCHAR), received_at)) "
        f"FROM ({matched_sql(spec)}) GROUP BY 1"
    ).fetchall()
    return {day: f"{count}:{digest}" for day, count, digest in rows}


def changed_days(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The days whose labelled predictions differ between two `labelled_days`, in order."""
    return sorted(day for day in before.keys() | after.keys() if before.get(day) != after.get(day))
