"""What moves a data set forward without clicks: eager conditions, drift, and a weekly retrain."""

from dagster import (
    AssetKey,
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

from mlops_assets.defs.monitoring.assets import PREDICTION_DAYS
from mlops_assets.lib.spec import DatasetSpec

RETRAINED = ("features", "candidates", "champion_model")


def automation_sensor(spec: DatasetSpec) -> AutomationConditionSensorDefinition:
    """Evaluates the eager conditions of one data set's group: a newly materialized raw partition
    is validated, and a changed validated table flows on to features, candidates and champion."""
    return AutomationConditionSensorDefinition(
        f"{spec.name}_automation",
        target=AssetSelection.groups(spec.name),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Declarative automation for the {spec.name} assets (toggle it in the UI).",
    )


def retrain_job(spec: DatasetSpec):
    """Rebuild features, candidates and champion on all validated data; the gate still decides."""
    return define_asset_job(
        f"{spec.name}_retrain",
        selection=AssetSelection.assets(*(AssetKey([spec.name, name]) for name in RETRAINED)),
        description=f"Retrain {spec.name} on every validated partition and promote if better.",
    )


def retrain_on_drift_sensor(spec: DatasetSpec, job):
    @asset_sensor(
        asset_key=AssetKey([spec.name, "drift"]),
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
            tags={"mlops/trigger": "drift", "mlops/drift_run": asset_event.run_id},
        )

    return retrain_on_drift


def monitoring_job(spec: DatasetSpec):
    """Load one day of served predictions and measure drift on the recent window."""
    keys = [AssetKey([spec.name, "prediction_log"]), AssetKey([spec.name, "drift"])]
    return define_asset_job(
        f"{spec.name}_monitoring",
        selection=AssetSelection.assets(*keys),
        partitions_def=PREDICTION_DAYS,
        description=f"Ingest today's {spec.name} prediction log, then measure drift.",
    )


def monitoring_schedule(spec: DatasetSpec, job):
    @schedule(
        name=f"{spec.name}_monitoring_every_15_minutes",
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Refreshes today's {spec.name} prediction_log partition and the drift.",
    )
    def monitoring(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return RunRequest(partition_key=day, tags={"mlops/trigger": "schedule"})

    return monitoring


def weekly_retrain_schedule(spec: DatasetSpec, job):
    return ScheduleDefinition(
        name=f"{spec.name}_weekly_retrain",
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.STOPPED,
        tags={"mlops/trigger": "schedule"},
        description=f"Retrain {spec.name} every Monday 03:00 UTC (off until toggled in the UI).",
    )
