"""Where a champion came from: MLflow run and registered version, Dagster runs, raw files, spec.

Written into the model card's JSON (`lineage`); the server adds the bundle id and the sha256 of
the bundle files it verified, so one served prediction (`version`) leads back to the exact bytes
of every raw file that went into the training table.
"""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import table, table_exists


def spec_sha256(spec: DatasetSpec) -> str:
    """The sha256 of the spec file's bytes (`sha256sum <ds>.yaml` gives the same), or of its
    parsed content when it was not read from a file."""
    if spec.path is not None and spec.path.is_file():
        return hashlib.sha256(spec.path.read_bytes()).hexdigest()
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def raw_partitions(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Every loaded raw partition with its file, sha256, size, load time and row counts
    (validated, quarantined); the features table is built from all of them."""
    if not table_exists(con, spec.name, "raw_files"):
        return []
    counts = ""
    if table_exists(con, spec.name, "validated"):
        counts = (
            f", (SELECT count(*) FROM {table(spec.name, 'validated')} v "
            "WHERE v._partition = f._partition) AS validated_rows"
            f", (SELECT count(*) FROM {table(spec.name, 'quarantine')} q "
            "WHERE q._partition = f._partition) AS quarantined_rows"
        )
    frame = con.execute(
        "SELECT _partition AS partition, source_file AS file, sha256, bytes, rows AS raw_rows, "
        f"malformed_lines, loaded_at{counts} FROM {table(spec.name, 'raw_files')} f "
        "ORDER BY _partition"
    ).df()
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for row in rows:
        row["loaded_at"] = row["loaded_at"].isoformat() + "Z" if row["loaded_at"] else None
        row["file_name"] = row["file"].rsplit("/", 1)[-1]
        for key in ("bytes", "raw_rows", "malformed_lines", "validated_rows", "quarantined_rows"):
            row[key] = int(row[key]) if row.get(key) is not None else None
    return rows


def lineage(
    spec: DatasetSpec,
    best,
    registered_version: str | None,
    promoted_in_run: str,
    partitions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The chain from a registered version back to the raw files (`best`: the candidate row)."""
    return {
        "registered_model": spec.name,
        "registered_version": registered_version,
        "model_uri": f"models:/{spec.name}/{registered_version}" if registered_version else None,
        "mlflow_run_id": best["run_id"],
        "logged_model_uri": best["model_uri"],
        "trained_in_dagster_run": best["dagster_run_id"],
        "promoted_in_dagster_run": promoted_in_run,
        "data_version": best["data_version"],
        "spec_file": str(spec.path) if spec.path else None,
        "spec_sha256": spec_sha256(spec),
        "raw_partitions": [
            {
                key: row[key]
                for key in ("partition", "file", "file_name", "sha256", "bytes", "loaded_at")
            }
            for row in partitions
        ],
    }
