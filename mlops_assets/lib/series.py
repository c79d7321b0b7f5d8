"""The history a served series model starts from: the last observations of each entity in the
validated data, written into its bundle at promotion (`mlops_contract.series`)."""

from __future__ import annotations

import json

import duckdb

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import quote, table


def history_window(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> bytes:
    """The `depth` latest validated observations per entity, oldest first, as the bundle's
    history file: the time as ISO text, the entity (or null), the observed columns."""
    series = spec.series.compiled()
    entity = quote(series.entity) if series.entity else "NULL"
    observed = ", ".join(quote(column) for column in series.observed)
    time = quote(series.time)
    rows = con.execute(
        f"SELECT CAST({entity} AS VARCHAR), strftime({time}, '%Y-%m-%d'), {observed} FROM ("
        f"SELECT *, row_number() OVER (PARTITION BY {entity} ORDER BY {time} DESC) AS back "
        f"FROM {table(spec.name, 'validated')} WHERE {time} IS NOT NULL) "
        f"WHERE back <= {series.depth} ORDER BY 1, {time}"
    ).fetchall()
    return json.dumps({"columns": list(series.observed), "rows": [list(r) for r in rows]}).encode()
