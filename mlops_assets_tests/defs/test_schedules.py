from datetime import UTC, datetime

from dagster import DefaultScheduleStatus, RunRequest, SkipReason, build_schedule_context

from mlops_assets.defs.automation.sensors import (
    monitoring_job,
    monitoring_schedule,
    retrain_job,
    weekly_retrain_schedule,
)
from mlops_assets.defs.keys import DATASET_TAG
from mlops_assets.defs.resources import resources_for
from mlops_contract.bundle import POINTER_FILE

LATE_EVENING = datetime(2026, 11, 23, 23, 45, tzinfo=UTC)


def evaluate_monitoring(spec, settings):
    schedule = monitoring_schedule(spec, monitoring_job(spec))
    resources = resources_for(settings)
    context = build_schedule_context(
        scheduled_execution_time=LATE_EVENING,
        resources={key: resources[key] for key in ("model_store", "source_files")},
    )
    return schedule, schedule(context)


def publish_champion_pointer(settings, ds):
    folder = settings.models_dir / ds
    folder.mkdir(parents=True)
    (folder / POINTER_FILE).write_text('{"bundle": "v1-test"}')


def serve_predictions(settings, ds, day):
    log = settings.predictions_dir / ds / f"{day}.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"request_id": "r1"}\n')


def test_monitoring_refreshes_the_current_utc_day(builtin_specs, settings):
    spec = builtin_specs["abalone"]
    publish_champion_pointer(settings, "abalone")
    serve_predictions(settings, "abalone", "2026-11-23")
    schedule, request = evaluate_monitoring(spec, settings)
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-11-23"
    assert request.tags[DATASET_TAG] == "abalone"


def test_monitoring_skips_without_a_champion(builtin_specs, settings):
    serve_predictions(settings, "abalone", "2026-11-23")
    _, result = evaluate_monitoring(builtin_specs["abalone"], settings)
    assert isinstance(result, SkipReason)
    assert "abalone has no champion yet" in result.skip_message


def test_monitoring_skips_when_nothing_was_served_today(builtin_specs, settings):
    publish_champion_pointer(settings, "abalone")
    serve_predictions(settings, "abalone", "2026-11-22")  # yesterday's traffic only
    _, result = evaluate_monitoring(builtin_specs["abalone"], settings)
    assert isinstance(result, SkipReason)
    assert "no abalone predictions served on 2026-11-23" in result.skip_message


def test_weekly_retrain_is_off_until_toggled(builtin_specs):
    spec = builtin_specs["abalone"]
    schedule = weekly_retrain_schedule(spec, retrain_job(spec))
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 1"
