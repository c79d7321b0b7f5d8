from datetime import UTC, datetime

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
)

from mlops_assets.defs.automation.sensors import monitoring_schedule, weekly_retrain_schedule
from mlops_assets.defs.keys import DATASET_TAG, TRIGGER_TAG
from mlops_assets.defs.resources import resources_for
from mlops_contract.bundle import POINTER_FILE

LATE_EVENING = datetime(2026, 11, 23, 23, 45, tzinfo=UTC)


def evaluate_monitoring(specs, settings):
    schedule = monitoring_schedule(specs)
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
    schedule, [request] = evaluate_monitoring([spec], settings)
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-11-23"
    assert request.tags[DATASET_TAG] == "abalone"


def test_monitoring_skips_without_a_champion(builtin_specs, settings):
    serve_predictions(settings, "abalone", "2026-11-23")
    _, result = evaluate_monitoring([builtin_specs["abalone"]], settings)
    assert isinstance(result, SkipReason)
    assert "abalone has no champion yet" in result.skip_message


def test_monitoring_skips_when_nothing_was_served_today(builtin_specs, settings):
    publish_champion_pointer(settings, "abalone")
    serve_predictions(settings, "abalone", "2026-11-22")  # yesterday's traffic only
    _, result = evaluate_monitoring([builtin_specs["abalone"]], settings)
    assert isinstance(result, SkipReason)
    assert "no abalone predictions served on 2026-11-23" in result.skip_message


def test_one_monitoring_schedule_runs_each_data_set_that_served_today(builtin_specs, settings):
    for ds in ("abalone", "iris"):
        publish_champion_pointer(settings, ds)
        serve_predictions(settings, ds, "2026-11-23")
    schedule, requests = evaluate_monitoring(list(builtin_specs.values()), settings)
    assert schedule.name == "monitoring"
    monitored = {
        ds: [AssetKey([ds, "prediction_log"]), AssetKey([ds, "drift"])]
        for ds in ("abalone", "iris")
    }
    # diabetes has no champion: passed over
    assert {r.tags[DATASET_TAG]: r.asset_selection for r in requests} == monitored


def test_weekly_retrain_is_off_until_toggled(builtin_specs):
    schedule = weekly_retrain_schedule(builtin_specs.values())
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 1"
    requests = schedule(build_schedule_context(scheduled_execution_time=LATE_EVENING))
    assert {r.tags[DATASET_TAG] for r in requests} == set(builtin_specs)
    assert all(r.tags[TRIGGER_TAG] == "schedule" for r in requests)
    [abalone] = [r for r in requests if r.tags[DATASET_TAG] == "abalone"]
    assert abalone.asset_selection == [
        AssetKey(["abalone", name]) for name in ("features", "candidates", "champion_model")
    ]
