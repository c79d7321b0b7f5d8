"""The names the definitions share: asset keys, the pool, groups and run tags, in one place.

`CHAMPION` is the asset that publishes bundles; the server names it too, so it comes from the
bundle contract rather than being spelled again here.
"""

from __future__ import annotations

from dagster import AssetKey

from mlops_contract.bundle import PUBLISHER_ASSET

RAW = "raw"
VALIDATED = "validated"
FEATURES = "features"
CANDIDATES = "candidates"
CHAMPION = PUBLISHER_ASSET
PREDICTION_LOG = "prediction_log"
DRIFT = "drift"
LABELS = "labels"
LIVE_PERFORMANCE = "live_performance"
SHADOW_COMPARISON = "shadow_comparison"
BATCH_PREDICTIONS = "batch_predictions"

# every asset that opens the warehouse: DuckDB allows one writing process per file
POOL = "duckdb"

DATASET_TAG = "mlops/dataset"  # on every run of a data set's jobs, sensors, schedules and builds
TRIGGER_TAG = "mlops/trigger"  # mlops build | automation | landing | drift | schedule
# `true` on a run: train and register even when a version was trained on the same inputs
FORCE_RETRAIN_TAG = "mlops/force_retrain"


def asset_key(ds: str, name: str) -> AssetKey:
    return AssetKey([ds, name])


def group_name(ds: str) -> str:
    return ds


def run_tags(ds: str, trigger: str | None = None) -> dict[str, str]:
    """The tags that say which data set a run built, and what started it."""
    return {DATASET_TAG: ds, **({TRIGGER_TAG: trigger} if trigger else {})}


def run_datasets(tags: dict[str, str], asset_keys) -> str:
    """The data set a run built: its tag, or, for an automation run (which may span data sets),
    the data sets of its assets, comma-separated; `-` when neither says."""
    if DATASET_TAG in tags:
        return tags[DATASET_TAG]
    return ",".join(sorted({key.path[0] for key in asset_keys or ()})) or "-"
