"""`<ds>/prediction_log` (served predictions back as a table) and `<ds>/drift`."""

import json
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.resources import ModelStore, SourceFiles, Warehouse
from mlops_assets.lib import charts, prediction_table
from mlops_assets.lib import drift as drift_lib
from mlops_assets.lib.features import query_features
from mlops_assets.lib.publishing import publish_document
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import append_rows
from mlops_contract.bundle import DRIFT_FILE, REFERENCE_FILE, BundleError, read_current_file
from mlops_contract.drift import drift_document

PREDICTION_DAYS = DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
DRIFT_CHECK = "drift_within_threshold"


class DriftConfig(Config):
    """What to compare with the champion's training data."""

    window_days: int = 7
    raw_partition: str | None = None


def monitoring_assets(spec: DatasetSpec) -> list:
    ds = spec.name

    @asset(
        key=asset_key(ds, keys.PREDICTION_LOG),
        group_name=group_name(ds),
        partitions_def=PREDICTION_DAYS,
        pool=POOL,
        kinds={"duckdb"},
        description=f"Predictions served for {ds} on one UTC day, in `{ds}.prediction_log`.",
    )
    def prediction_log(
        context: AssetExecutionContext, warehouse: Warehouse, source_files: SourceFiles
    ) -> MaterializeResult:
        day = context.partition_key
        path = source_files.prediction_log(ds, day)
        with warehouse.get_connection() as con:
            loaded = prediction_table.load_day(con, spec, path, day)
        if loaded.torn_lines:
            context.log.warning(f"{path}: skipped {loaded.torn_lines} unreadable line(s)")
        return MaterializeResult(
            metadata={
                "file": str(path),
                "rows": loaded.rows,
                "torn_lines_skipped": loaded.torn_lines,
                "models_and_versions": loaded.versions,
                **{f"latency_ms_{name}": value for name, value in loaded.latency_ms.items()},
                "dagster/row_count": loaded.rows,
                "dagster/table_name": f"{ds}.prediction_log",
            }
        )

    @asset(
        key=asset_key(ds, keys.DRIFT),
        deps=[prediction_log.key, asset_key(ds, keys.CHAMPION)],
        group_name=group_name(ds),
        pool=POOL,
        kinds={"duckdb", "scipy"},
        check_specs=[
            AssetCheckSpec(
                DRIFT_CHECK,
                asset=asset_key(ds, keys.DRIFT),
                description=(
                    "Warns when a feature drifts beyond chance across all features (Holm's "
                    "correction); fails (error) on dataset drift."
                ),
            )
        ],
        description=f"Per-feature drift of the current window against the champion's training "
        f"data; history in `{ds}.drift_metrics`.",
    )
    def drift(
        context: AssetExecutionContext,
        config: DriftConfig,
        warehouse: Warehouse,
        model_store: ModelStore,
    ) -> MaterializeResult:
        try:
            manifest, reference = read_current_file(model_store.dataset_dir(ds), REFERENCE_FILE)
        except BundleError as exc:
            raise Failure(description=f"{ds}: no drift reference: {exc}") from None
        with warehouse.get_connection() as con:
            current, start, end = current_window(con, spec, config)
            rows = 0 if current is None else len(current)
            if rows < spec.gates.drift_min_rows:
                return not_judged(manifest, rows, spec.gates.drift_min_rows)
            report, prediction = compare_window(spec, json.loads(reference), current)
            record_metrics(con, spec, report, prediction, context.run_id, manifest, (start, end))
        location = model_store.location()
        publish_document(location, DRIFT_FILE, drift_document_of(ds, report, manifest))
        return drift_result(report, prediction, manifest, start, end)

    return [prediction_log, drift]


def current_window(con, spec: DatasetSpec, config: DriftConfig):
    """The rows to test: a named raw partition's validated rows, or the recent served inputs."""
    if config.raw_partition is None:
        return prediction_table.window(con, spec, config.window_days)
    rows = query_features(con, spec, config.raw_partition)
    frame = rows[[c.name for c in spec.feature_columns]]
    return frame, config.raw_partition, config.raw_partition


def compare_window(spec: DatasetSpec, profile: dict, current):
    """(feature drift report, prediction drift report or None): the model output is reported on
    its own line and does not count towards dataset drift."""
    gates = spec.gates
    features = [c.name for c in spec.drift_columns]
    report = drift_lib.compare(
        profile, current, gates.drift_alpha, gates.max_drift_share, columns=features
    )
    report = named_by_api_field(spec, report)
    if "prediction" not in current.columns:
        return report, None
    prediction = drift_lib.compare(
        profile, current, gates.drift_alpha, gates.max_drift_share, columns=["prediction"]
    )
    return report, prediction


def named_by_api_field(spec: DatasetSpec, report):
    """Features as clients name them, in the API and `mlops traffic --shift` (`Shell_weight`),
    not as the spec's columns (`Shell weight`): in the tables, the metadata and the gauges."""
    field = {c.name: c.field for c in spec.feature_columns}
    features = [replace(f, feature=field.get(f.feature, f.feature)) for f in report.features]
    return replace(report, features=features)


def record_metrics(con, spec: DatasetSpec, report, prediction, run_id, manifest, window):
    """Append one row per feature (and one for the prediction) to `<ds>.drift_metrics`."""
    rows = report.to_frame().assign(role="feature")
    if prediction is not None:
        rows = pd.concat([rows, prediction.to_frame().assign(role="prediction")])
    rows.insert(0, "evaluation_id", run_id)
    rows.insert(1, "evaluated_at", datetime.now(UTC))
    rows.insert(2, "window_start", str(window[0]))
    rows.insert(3, "window_end", str(window[1]))
    rows["champion_version"] = str(manifest["version"])
    rows["alpha"] = report.alpha
    rows["threshold"] = report.threshold
    rows["dataset_drift"] = report.dataset_drift
    append_rows(con, spec.name, "drift_metrics", rows)


def drift_document_of(dataset: str, report, manifest: dict) -> dict:
    """What the prediction servers export as drift gauges (mlops_contract.drift)."""
    features = {
        f.feature: {"p_value": f.p_value, "psi": f.psi, "drifted": f.drifted}
        for f in report.features
    }
    evaluated_at = datetime.now(UTC).isoformat()
    version = str(manifest["version"])
    return drift_document(dataset, version, evaluated_at, report.dataset_drift, features)


def not_judged(manifest: dict, rows: int, minimum: int) -> MaterializeResult:
    """Too few rows in the window (none at all included) to tell drift from chance: reported as
    such, never as drift, so nothing alarms or retrains on a handful of requests."""
    if rows == 0:
        note = "no rows in the current window: serve some predictions, then materialize again"
    else:
        note = f"too small to judge ({rows} < {minimum} rows, `gates.drift_min_rows`)"
    metadata = {
        "current_rows": rows,
        "dataset_drift": False,
        "champion_version": str(manifest["version"]),
        "verdict": note,
    }
    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(check_name=DRIFT_CHECK, passed=True, metadata={"note": note})
        ],
    )


def drift_result(report, prediction, manifest: dict, start, end) -> MaterializeResult:
    drifted = [f.feature for f in report.features if f.drifted]
    significant = report.significant_features()
    lines = report.features + (prediction.features if prediction else [])
    shown = drift_lib.DriftReport(
        lines, report.alpha, report.threshold, report.drifted_share, report.dataset_drift
    )
    table_md = shown.to_frame().to_markdown(index=False, floatfmt=".4g")
    picture = charts.markdown_image(drift_lib.drift_chart_png(shown), "reference vs current")
    severity = AssetCheckSeverity.ERROR if report.dataset_drift else AssetCheckSeverity.WARN
    return MaterializeResult(
        metadata={
            "dataset_drift": report.dataset_drift,
            "drifted_share": float(report.drifted_share),
            "drifted_features": drifted,
            "significant_features": significant,
            "champion_version": str(manifest["version"]),
            "window": f"{start} .. {end}",
            "current_rows": max((f.current_size for f in report.features), default=0),
            "features": MetadataValue.md(table_md + picture),
            "prediction_drift": bool(prediction and prediction.features[0].drifted),
            **{f"p_value/{f.feature}": float(f.p_value) for f in lines},
            **{f"psi/{f.feature}": float(f.psi) for f in lines},
        },
        check_results=[
            AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=not (report.dataset_drift or significant),
                severity=severity,
                metadata={
                    "drifted_features": drifted,
                    "significant_features": significant,
                    "drifted_share": report.drifted_share,
                },
            )
        ],
    )
