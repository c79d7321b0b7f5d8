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
from mlops_contract.bundle import POINTER_FILE

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


EPISODE_LOOKBACK = 200  # drift evaluations looked back at to find where an episode began


def retrain_on_drift_sensor(spec: DatasetSpec, job):
    drift_key = asset_key(spec.name, keys.DRIFT)

    @asset_sensor(
        asset_key=drift_key,
        name=f"{spec.name}_retrain_on_drift",
        job=job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Dataset drift requests a retrain when there is something new to learn "
        "from (validated data newer than the last training), once per drift episode.",
    )
    def retrain_on_drift(context: SensorEvaluationContext, asset_event: EventLogEntry):
        if not drifted(asset_event):
            return SkipReason(f"no dataset drift in run {asset_event.run_id}")
        if not validated_since_training(context.instance, spec.name):
            return SkipReason(drift_alone(spec.name, asset_event.run_id))
        episode = episode_start(context.instance, drift_key)
        # one run key per episode: Dagster never launches a run key twice for a sensor
        return RunRequest(
            run_key=f"drift-episode-{episode}",
            tags={**run_tags(spec.name, "drift"), "mlops/drift_run": episode},
        )

    return retrain_on_drift


def drifted(event: EventLogEntry) -> bool:
    materialization = event.asset_materialization
    flag = materialization.metadata.get("dataset_drift") if materialization else None
    return flag is not None and bool(flag.value)


def validated_since_training(instance, ds: str) -> bool:
    """Whether a validated partition was materialized after the last candidates run: the drifted
    inputs themselves carry no labels, so only new validated data can teach a retrain anything."""
    validated = instance.get_latest_materialization_event(asset_key(ds, keys.VALIDATED))
    trained = instance.get_latest_materialization_event(asset_key(ds, keys.CANDIDATES))
    if validated is None:
        return False
    return trained is None or validated.timestamp > trained.timestamp


def episode_start(instance, drift_key) -> str:
    """The run id of the first drifted evaluation in the current run of drifted ones."""
    records = instance.fetch_materializations(drift_key, limit=EPISODE_LOOKBACK).records
    start = None
    for record in records:  # newest first
        if not drifted(record.event_log_entry):
            break
        start = record.run_id
    return start or records[0].run_id


def drift_alone(ds: str, run_id: str) -> str:
    return (
        f"dataset drift in run {run_id}, but nothing new to learn from: no validated data since "
        f"the last training (served inputs have no labels, so retraining would only repeat it). "
        f"The drift is alerted ({ds}/drift's check, mlops_dataset_drift); land new labelled data "
        f"in data/landing/{ds}/ and the retrain follows."
    )


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
