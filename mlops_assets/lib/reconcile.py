"""Pointer, alias and history agree again after a build died between them.

The champion step publishes the bundle (`current.json`), then moves the registry alias, then
appends to `<ds>.champion_history`. The bundle is published only after every gate passed, so a
build killed after publishing left a decided champion whose last two steps are missing: the next
build completes them before it decides anything, under the same per-data-set lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_assets.lib import registry
from mlops_assets.lib.warehouse import append_rows, scalar, table, table_exists
from mlops_contract import bundle

HISTORY = "champion_history"
HISTORY_COLUMNS = (
    "version VARCHAR, promoted_at TIMESTAMPTZ, previous_version VARCHAR, reason VARCHAR, "
    "trigger VARCHAR, dagster_run_id VARCHAR, metrics JSON, previous_metrics JSON"
)


def served_manifest(dataset_dir: Path) -> dict | None:
    """The manifest `current.json` names, or None when there is none (or it does not verify)."""
    try:
        pointer = bundle.read_pointer(dataset_dir)
        return bundle.read_manifest(dataset_dir, pointer)[1] if pointer else None
    except (bundle.BundleError, OSError, ValueError):
        return None


def reconcile_champion(
    name: str, dataset_dir: Path, connect: Callable[[], AbstractContextManager]
) -> tuple[str, ...]:
    """Move alias `champion` to the served version and record it in the history when an
    interrupted build left either behind; returns what was done, as notes."""
    manifest = served_manifest(dataset_dir)
    if manifest is None:
        return ()
    served = str(manifest["version"])
    found = registry.champion_version(MlflowClient(), name)
    aliased = str(found.version) if found is not None else None
    notes = []
    if aliased != served:
        try:
            registry.set_alias(name, registry.CHAMPION, served)
        except MlflowException as exc:
            return (f"{name}: served v{served} is not in the registry ({exc}); alias left as is",)
        notes.append(f"{name}: alias champion moved from v{aliased} to the served v{served}")
    with connect() as con:
        if not _recorded(con, name, served):
            append_rows(con, name, HISTORY, _history_row(manifest, aliased), HISTORY_COLUMNS)
            notes.append(f"{name}: champion_history now records the served v{served}")
    return tuple(notes)


def _recorded(con, name: str, version: str) -> bool:
    if not table_exists(con, name, HISTORY):
        return False
    sql = f"SELECT count(*) FROM {table(name, HISTORY)} WHERE version = ?"
    return bool(scalar(con, sql, [version]))


def _history_row(manifest: dict, previous_version: str | None) -> pd.DataFrame:
    row = {
        "version": str(manifest["version"]),
        "promoted_at": pd.Timestamp(manifest["promoted_at"]),
        "previous_version": previous_version,
        "reason": "reconciled",  # an interrupted build published it after its gates passed
        "trigger": "reconcile",
        "dagster_run_id": manifest.get("dagster_run_id"),
        "metrics": json.dumps(manifest.get("metrics")),
        "previous_metrics": json.dumps(None),
    }
    return pd.DataFrame([row])
