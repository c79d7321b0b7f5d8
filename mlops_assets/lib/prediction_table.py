"""Load the prediction server's JSON Lines log for one UTC day into `<ds>.prediction_log` (and
its shadow log, the challenger's predictions, into `<ds>.shadow_log`: same layout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.validation import SQL_TYPES
from mlops_assets.lib.warehouse import literal, quote, scalar, table, table_exists, transaction

RECORD_COLUMNS = (
    "{'request_id': 'VARCHAR', 'timestamp': 'VARCHAR', 'model': 'VARCHAR', 'version': 'VARCHAR',"
    " 'latency_ms': 'DOUBLE', 'input': 'JSON', 'output': 'JSON'}"
)


@dataclass
class LoadedDay:
    rows: int = 0
    torn_lines: int = 0
    versions: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)


def count_lines(path: Path) -> int:
    """Non-empty lines, a last line without newline included."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _feature_selects(spec: DatasetSpec) -> str:
    selects = []
    for column in spec.feature_columns:
        text = f"input->>{literal(column.field)}"
        kind = SQL_TYPES[column.type]
        selects.append(f"TRY_CAST({text} AS {kind}) AS {quote(column.name)}")
    return ", ".join(selects)


def _prediction_select(spec: DatasetSpec) -> str:
    kind = "DOUBLE" if spec.task == "regression" else "VARCHAR"
    return f"TRY_CAST(output->>'prediction' AS {kind}) AS prediction"


PREDICTION_LOG = "prediction_log"
SHADOW_LOG = "shadow_log"


def create_table(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, name: str) -> None:
    features = ", ".join(f"{quote(c.name)} {SQL_TYPES[c.type]}" for c in spec.feature_columns)
    prediction = "DOUBLE" if spec.task == "regression" else "VARCHAR"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.name)}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table(spec.name, name)} (_day DATE, "
        "request_id VARCHAR, timestamp TIMESTAMPTZ, model VARCHAR, version VARCHAR, "
        f"latency_ms DOUBLE, {features}, prediction {prediction}, probabilities JSON)"
    )


def load_day(
    con: duckdb.DuckDBPyConnection,
    spec: DatasetSpec,
    path: Path,
    day: str,
    name: str = PREDICTION_LOG,
) -> LoadedDay:
    """Replace day `day` of the table `name` with the records in `path` (absent file: no
    records). Lines that do not parse (a torn last line after a crash) are skipped and counted."""
    create_table(con, spec, name)
    target = table(spec.name, name)
    with transaction(con):
        con.execute(f"DELETE FROM {target} WHERE _day = CAST($d AS DATE)", {"d": day})
        if path.is_file() and path.stat().st_size:
            con.execute(
                f"INSERT INTO {target} SELECT CAST($d AS DATE), request_id, "
                "CAST(timestamp AS TIMESTAMPTZ), model, version, latency_ms, "
                f"{_feature_selects(spec)}, {_prediction_select(spec)}, "
                "output->'probabilities' "
                f"FROM read_json($path, format='newline_delimited', columns={RECORD_COLUMNS}, "
                "ignore_errors=true) WHERE request_id IS NOT NULL",
                {"d": day, "path": str(path)},
            )
    return _summary(con, target, day, count_lines(path) if path.is_file() else 0)


def _summary(con, target: str, day: str, lines: int) -> LoadedDay:
    where = "WHERE _day = CAST($d AS DATE)"
    rows = scalar(con, f"SELECT count(*) FROM {target} {where}", {"d": day})
    versions = con.execute(
        f"SELECT DISTINCT model || ' v' || version FROM {target} {where} ORDER BY 1", {"d": day}
    ).fetchall()
    latency = con.execute(
        "SELECT quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95), "
        f"quantile_cont(latency_ms, 0.99) FROM {target} {where}",
        {"d": day},
    ).fetchall()[0]
    percentiles = {
        name: float(value)
        for name, value in zip(("p50", "p95", "p99"), latency, strict=True)
        if value is not None
    }
    return LoadedDay(rows, lines - rows, [v[0] for v in versions], percentiles)


def window(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, days: int
) -> tuple[object, object, object]:
    """(frame of feature columns + prediction, window start, window end) of the last `days` days."""
    target = table(spec.name, "prediction_log")
    if not table_exists(con, spec.name, "prediction_log"):
        return None, None, None
    end = scalar(con, f"SELECT max(timestamp) FROM {target}")
    if end is None:
        return None, None, None
    columns = ", ".join(quote(c.name) for c in spec.feature_columns)
    frame = con.execute(
        f"SELECT {columns}, prediction FROM {target} "
        f"WHERE timestamp > CAST($end AS TIMESTAMPTZ) - INTERVAL {int(days)} DAY",
        {"end": end},
    ).df()
    start = scalar(
        con, f"SELECT CAST($end AS TIMESTAMPTZ) - INTERVAL {int(days)} DAY", {"end": end}
    )
    return frame, start, end
