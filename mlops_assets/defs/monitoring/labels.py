"""`<ds>/labels`: ground truth for served predictions, and the sensor that loads it when label
files change."""

import hashlib
import json

from dagster import (
    AssetDep,
    AssetExecutionContext,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.resources import SourceFiles, Warehouse
from mlops_assets.lib import labels as labels_lib
from mlops_assets.lib.spec import DatasetSpec


def labels_asset(spec: DatasetSpec):
    ds = spec.name

    @asset(
        key=asset_key(ds, keys.LABELS),
        group_name=group_name(ds),
        deps=[AssetDep(asset_key(ds, keys.PREDICTION_LOG))],
        pool=POOL,
        kinds={"duckdb"},
        description=f"Every label for {ds}'s served predictions (POST /models/{ds}/feedback and "
        f"files in labels/{ds}/) in `{ds}.labels`, the latest per request current and joined "
        f"to `{ds}.prediction_log`; lines that cannot be labels in `{ds}.labels_rejected`.",
    )
    def labels(
        context: AssetExecutionContext, warehouse: Warehouse, source_files: SourceFiles
    ) -> MaterializeResult:
        api, drop = source_files.label_folders(ds)
        files = labels_lib.label_files(api, drop)
        kept, rejected = labels_lib.collect(spec, files, api)
        with warehouse.get_connection() as con:
            summary = labels_lib.store(con, spec, kept, rejected)
        if summary.rejected:
            context.log.warning(
                f"{ds}: {summary.rejected} line(s) rejected, see {ds}.labels_rejected"
            )
        return MaterializeResult(
            metadata={
                "files": len(files),
                "labels": summary.labels,
                "current": summary.current,
                "superseded": summary.labels - summary.current,
                "matched": summary.matched,
                "unmatched": summary.current - summary.matched,
                "rejected": summary.rejected,
                "label_coverage": summary.coverage,
                "median_label_delay_s": summary.median_delay_s,
                "dagster/row_count": summary.labels,
                "dagster/table_name": f"{ds}.labels",
            }
        )

    return labels


def labels_sensor(spec: DatasetSpec) -> SensorDefinition:
    ds = spec.name

    @sensor(
        name=f"{ds}_labels",
        asset_selection=[asset_key(ds, keys.LABELS)],
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Loads {ds}'s labels again when the feedback log or labels/{ds}/ changed "
        "and has stayed the same for a tick (a file still being copied changes).",
    )
    def labels_changed(context: SensorEvaluationContext, source_files: SourceFiles) -> SensorResult:
        files = labels_lib.label_files(*source_files.label_folders(ds))
        state = hashlib.sha256(
            json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]).encode()
        ).hexdigest()[:16]
        cursor = json.loads(context.cursor) if context.cursor else {}
        requested = cursor.get("requested")
        if not files or state == requested:
            skip, run = "no new labels", False
        elif state != cursor.get("seen"):
            skip, run = "label files changed; waiting a tick for them to settle", False
        else:
            skip, run, requested = None, True, state
        return SensorResult(
            run_requests=[RunRequest(run_key=f"labels@{state}", tags=keys.run_tags(ds, "labels"))]
            if run
            else [],
            skip_reason=skip,
            cursor=json.dumps({"seen": state, "requested": requested}),
        )

    return labels_changed
