"""What moves a data set forward without clicks: eager conditions, drift, and a weekly retrain."""

import json
from collections.abc import Iterable
from pathlib import Path

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import TRIGGER_TAG, asset_key, group_name, run_tags
from mlops_assets.defs.resources import ModelStore, SourceFiles
from mlops_assets.lib.spec import DatasetSpec
from mlops_contract.bundle import CHALLENGER_FILE, POINTER_FILE, BundleError, read_pointer

RETRAINED = (keys.FEATURES, keys.CANDIDATES, keys.CHAMPION)
MONITORED_TAG = "mlops/monitored"  # `<ds>@<logs_state>` of the logs a monitoring run was for


def automation_sensor(specs: Iterable[DatasetSpec]) -> AutomationConditionSensorDefinition:
    """Evaluates the eager conditions of every data set's group: a changed validated table
    flows on to features, candidates and champion. One sensor for all groups: its cost hardly
    grows with the data sets."""
    return AutomationConditionSensorDefinition(
        "automation",
        target=AssetSelection.groups(*(group_name(spec.name) for spec in specs)),
        run_tags={TRIGGER_TAG: "automation"},
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Declarative automation for every data set's assets (toggle it in the UI).",
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


EPISODE_LOOKBACK = 200  # drift evaluations looked back at to find where an episode began


def retrain_on_drift_sensor(specs: Iterable[DatasetSpec]) -> SensorDefinition:
    """One sensor over every data set's drift: the cursor holds, per data set, the storage id
    of the last drift evaluation looked at; each tick reads the latest of all in one query."""
    specs = list(specs)

    @every_dataset_sensor(
        "retrain_on_drift",
        [key for spec in specs for key in retrained_keys(spec.name)],
        "Dataset drift requests a retrain (features, candidates, champion_model) when there is "
        "something new to learn from (validated data newer than the last training), once per "
        "drift episode.",
    )
    def retrain_on_drift(context: SensorEvaluationContext) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        latest = latest_materializations(context.instance, specs, keys.DRIFT)
        requests, reasons = [], []
        for spec in specs:
            record = latest.get(spec.name)
            if record is None or record.storage_id <= cursor.get(spec.name, -1):
                continue
            cursor[spec.name] = record.storage_id
            outcome = drift_outcome(context.instance, spec.name, record.event_log_entry)
            if isinstance(outcome, RunRequest):
                requests.append(outcome)
            else:
                reasons.append(outcome)
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else " ".join(reasons) or "no new drift evaluation",
            cursor=json.dumps(cursor),
        )

    return retrain_on_drift


def every_dataset_sensor(name: str, asset_selection: list, description: str):
    """The decorator of a sensor over every data set's events: running, every 30 s."""
    return sensor(
        name=name,
        asset_selection=asset_selection,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=description,
    )


def latest_materializations(instance, specs: list[DatasetSpec], name: str) -> dict:
    """Each data set's latest materialization record (storage id and event) of asset `name`,
    by data set, in one query."""
    records = instance.get_asset_records([asset_key(spec.name, name) for spec in specs])
    return {
        record.asset_entry.asset_key.path[0]: record.asset_entry.last_materialization_record
        for record in records
        if record.asset_entry.last_materialization_record is not None
    }


def drift_outcome(instance, ds: str, event: EventLogEntry) -> RunRequest | str:
    """A retrain request for a drift evaluation, or why there is none."""
    if not drifted(event):
        return f"{ds}: no dataset drift in run {event.run_id}."
    if not validated_since_training(instance, ds):
        return drift_alone(ds, event.run_id)
    episode = episode_start(instance, asset_key(ds, keys.DRIFT))
    # one run key per episode: Dagster never launches a run key twice for a sensor
    return RunRequest(
        run_key=f"drift-episode-{episode}",
        asset_selection=retrained_keys(ds),
        tags={**run_tags(ds, "drift"), "mlops/drift_run": episode},
    )


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
        f"{ds}: dataset drift in run {run_id}, but nothing new to learn from: no validated data "
        f"since the last training (served inputs have no labels, so retraining would only repeat "
        f"it). The drift is alerted ({ds}/drift's check, mlops_dataset_drift); land new "
        f"labelled data in data/landing/{ds}/ and the retrain follows."
    )


def monitoring_schedule(specs: Iterable[DatasetSpec]) -> ScheduleDefinition:
    """One schedule for every data set: a run of today's monitoring per data set that has a
    champion and whose logs of today changed since its last monitoring run."""
    specs = list(specs)

    @schedule(
        name="monitoring",
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        target=AssetSelection.assets(
            *(key for spec in specs for key in monitored_keys(spec.name, shadowed=True))
        ),
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every 15 minutes, refreshes each data set's prediction_log, live_performance "
        "(and shadow_comparison while a challenger is published) of today and its drift; passes "
        "over, saying why, a data set with no champion, nothing served today or nothing new "
        "since its last monitoring run.",
    )
    def monitoring(
        context: ScheduleEvaluationContext, model_store: ModelStore, source_files: SourceFiles
    ) -> list[RunRequest] | SkipReason:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        requests, reasons = [], []
        for spec in specs:
            reason = nothing_to_monitor(spec, day, model_store, source_files)
            if reason:
                reasons.append(reason)
                continue
            shadowed = challenger_published(model_store.dataset_dir(spec.name))
            logs = f"{spec.name}@{logs_state(source_files, spec.name, day, shadowed)}"
            if already_monitored(context.instance, logs):
                reasons.append(f"nothing new in {spec.name}'s logs of {day} since its last run")
            else:
                requests.append(monitoring_request(spec.name, day, shadowed, logs))
        return requests or SkipReason("; ".join(reasons) or "no data set")

    return monitoring


def monitored_keys(ds: str, shadowed: bool) -> list:
    names = [keys.PREDICTION_LOG, keys.DRIFT, keys.LIVE_PERFORMANCE]
    return [asset_key(ds, name) for name in names + ([keys.SHADOW_COMPARISON] if shadowed else [])]


def monitoring_request(ds: str, day: str, shadowed: bool, logs: str) -> RunRequest:
    return RunRequest(
        run_key=ds,  # one per data set and scheduled time
        partition_key=day,
        asset_selection=monitored_keys(ds, shadowed),
        tags={**run_tags(ds, "schedule"), MONITORED_TAG: logs},
    )


def logs_state(source_files: SourceFiles, ds: str, day: str, shadowed: bool) -> str:
    """The day and the size and mtime of its prediction log (and shadow log, while shadowed):
    the logs only grow, so equal states mean nothing new was served."""
    paths = [source_files.prediction_log(ds, day)]
    if shadowed:
        paths.append(source_files.shadow_log(ds, day))
    stats = [path.stat() if path.is_file() else None for path in paths]
    return day + "".join(f":{s.st_size}-{s.st_mtime_ns}" if s else ":-" for s in stats)


def already_monitored(instance, logs: str) -> bool:
    """Whether a monitoring run was requested for these very logs (whatever its outcome: a
    failed run is not retried on unchanged logs, so the schedule never spins)."""
    return bool(instance.get_runs(RunsFilter(tags={MONITORED_TAG: logs}), limit=1))


def challenger_published(dataset_dir: Path) -> bool:
    """Whether challenger.json names a bundle (an unreadable one: shadow_comparison says why)."""
    try:
        return read_pointer(dataset_dir, CHALLENGER_FILE) is not None
    except BundleError:
        return True


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


def weekly_retrain_schedule(specs: Iterable[DatasetSpec]) -> ScheduleDefinition:
    """One schedule for every data set: a retrain run per data set, every Monday."""
    specs = list(specs)

    @schedule(
        name="weekly_retrain",
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        target=AssetSelection.assets(*(key for spec in specs for key in retrained_keys(spec.name))),
        default_status=DefaultScheduleStatus.STOPPED,
        description="Retrains every data set (features, candidates, champion_model; one run "
        "each) every Monday 03:00 UTC (off until toggled in the UI).",
    )
    def weekly_retrain(context: ScheduleEvaluationContext) -> list[RunRequest]:
        return [
            RunRequest(
                run_key=spec.name,
                asset_selection=retrained_keys(spec.name),
                tags=run_tags(spec.name, "schedule"),
            )
            for spec in specs
        ]

    return weekly_retrain


def retrained_keys(ds: str) -> list:
    """What a retrain materializes: features, candidates and the champion."""
    return [asset_key(ds, name) for name in RETRAINED]
