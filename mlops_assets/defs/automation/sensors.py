"""What moves a data set forward without clicks: eager conditions, drift, and a weekly retrain."""

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    asset_sensor,
    define_asset_job,
    schedule,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import asset_key, group_name, run_tags
from mlops_assets.defs.monitoring.assets import PREDICTION_DAYS
from mlops_assets.defs.resources import ModelStore, SourceFiles
from mlops_assets.lib.spec import DatasetSpec
from serving.bundle import POINTER_FILE

RETRAINED = (keys.FEATURES, keys.CANDIDATES, keys.CHAMPION)


def automation_sensor(spec: DatasetSpec) -> AutomationConditionSensorDefinition:
    """Evaluates the eager conditions of one data set's group: a newly materialized raw partition
    is validated, and a changed validated table flows on to features, candidates and champion."""
    return AutomationConditionSensorDefinition(
        f"{spec.name}_automation",
        target=AssetSelection.groups(group_name(spec.name)),
        run_tags=run_tags(spec.name, "automation"),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Declarative automation for the {spec.name} assets (toggle it in the UI).",
    )


def build_job(spec: DatasetSpec):
    """What `mlops build` materializes, from the Jobs page: pick the source file's partition."""
    selected = (keys.RAW, keys.VALIDATED, *RETRAINED)
    return define_asset_job(
        f"{spec.name}_build",
        selection=AssetSelection.assets(*(asset_key(spec.name, name) for name in selected)),
        tags=run_tags(spec.name),
        description=f"Ingest, validate, train and promote {spec.name} for one source file.",
    )


def retrain_job(spec: DatasetSpec):
    """Rebuild features, candidates and champion on all validated data; the gate still decides."""
    return define_asset_job(
        f"{spec.name}_retrain",
        selection=AssetSelection.assets(*(asset_key(spec.name, name) for name in RETRAINED)),
        tags=run_tags(spec.name),
        description=f"Retrain {spec.name} on every validated partition and promote if better.",
    )


def retrain_on_drift_sensor(spec: DatasetSpec, job):
    @asset_sensor(
        asset_key=asset_key(spec.name, keys.DRIFT),
        name=f"{spec.name}_retrain_on_drift",
        job=job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Dataset drift requests one retrain per drift evaluation.",
    )
    def retrain_on_drift(context: SensorEvaluationContext, asset_event: EventLogEntry):
        materialization = asset_event.asset_materialization
        flag = materialization.metadata.get("dataset_drift") if materialization else None
        if flag is None or not flag.value:
            return SkipReason(f"no dataset drift in run {asset_event.run_id}")
        return RunRequest(
            run_key=f"drift-{asset_event.run_id}",
            tags={**run_tags(spec.name, "drift"), "mlops/drift_run": asset_event.run_id},
        )

    return retrain_on_drift


def monitoring_job(spec: DatasetSpec):
    """Load one day of served predictions and measure drift on the recent window."""
    selected = [asset_key(spec.name, keys.PREDICTION_LOG), asset_key(spec.name, keys.DRIFT)]
    return define_asset_job(
        f"{spec.name}_monitoring",
        selection=AssetSelection.assets(*selected),
        partitions_def=PREDICTION_DAYS,
        tags=run_tags(spec.name),
        description=f"Ingest today's {spec.name} prediction log, then measure drift.",
    )


def monitoring_schedule(spec: DatasetSpec, job):
    @schedule(
        name=f"{spec.name}_monitoring_every_15_minutes",
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Refreshes today's {spec.name} prediction_log partition and the drift; "
        "skips while there is no champion or nothing was served today.",
    )
    def monitoring(
        context: ScheduleEvaluationContext, model_store: ModelStore, source_files: SourceFiles
    ) -> RunRequest | SkipReason:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        reason = nothing_to_monitor(spec, day, model_store, source_files)
        if reason:
            return SkipReason(reason)
        return RunRequest(partition_key=day, tags=run_tags(spec.name, "schedule"))

    return monitoring


def nothing_to_monitor(
    spec: DatasetSpec, day: str, model_store: ModelStore, source_files: SourceFiles
) -> str | None:
    """Why a monitoring run now would have nothing to measure, or None."""
    if not (model_store.dataset_dir(spec.name) / POINTER_FILE).is_file():
        return f"{spec.name} has no champion yet: materialize {spec.name}/{keys.CHAMPION} first"
    log = source_files.prediction_log(spec.name, day)
    if not log.is_file() or log.stat().st_size == 0:
        return f"no {spec.name} predictions served on {day} (no {log})"
    return None


def weekly_retrain_schedule(spec: DatasetSpec, job):
    return ScheduleDefinition(
        name=f"{spec.name}_weekly_retrain",
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.STOPPED,
        tags=run_tags(spec.name, "schedule"),
        description=f"Retrain {spec.name} every Monday 03:00 UTC (off until toggled in the UI).",
    )
