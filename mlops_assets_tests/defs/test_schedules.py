from datetime import UTC, datetime

import pytest
from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
    materialize,
)

from mlops_assets.defs.automation.sensors import monitoring_schedule, weekly_retrain_schedule
from mlops_assets.defs.keys import DATASET_TAG, TRIGGER_TAG
from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.resources import resources_for
from mlops_contract.bundle import CHALLENGER_FILE, POINTER_FILE

LATE_EVENING = datetime(2026, 11, 23, 23, 45, tzinfo=UTC)


@pytest.fixture
def stored_instance(tmp_path):
    """A schedule's context reopens its instance from a reference: an ephemeral one has none."""
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def evaluate_monitoring(specs, settings, instance):
    schedule = monitoring_schedule(specs)
    resources = resources_for(settings)
    # closed after use: the instance it reopens from the reference is set as current meanwhile
    with build_schedule_context(
        instance=instance,
        scheduled_execution_time=LATE_EVENING,
        resources={key: resources[key] for key in ("model_store", "source_files")},
    ) as context:
        return schedule, schedule(context)


def publish_champion_pointer(settings, ds):
    folder = settings.models_dir / ds
    folder.mkdir(parents=True)
    (folder / POINTER_FILE).write_text('{"bundle": "v1-test"}')


def serve_predictions(settings, ds, day):
    log = settings.predictions_dir / ds / f"{day}.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"request_id": "r1"}\n')


def test_monitoring_refreshes_the_current_utc_day(builtin_specs, settings, stored_instance):
    spec = builtin_specs["abalone"]
    publish_champion_pointer(settings, "abalone")
    serve_predictions(settings, "abalone", "2026-11-23")
    schedule, [request] = evaluate_monitoring([spec], settings, stored_instance)
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-11-23"
    assert request.tags[DATASET_TAG] == "abalone"


def test_monitoring_skips_without_a_champion(builtin_specs, settings, stored_instance):
    serve_predictions(settings, "abalone", "2026-11-23")
    _, result = evaluate_monitoring([builtin_specs["abalone"]], settings, stored_instance)
    assert isinstance(result, SkipReason)
    assert "abalone has no champion yet" in result.skip_message


def test_monitoring_skips_when_nothing_was_served_today(builtin_specs, settings, stored_instance):
    publish_champion_pointer(settings, "abalone")
    serve_predictions(settings, "abalone", "2026-11-22")  # yesterday's traffic only
    _, result = evaluate_monitoring([builtin_specs["abalone"]], settings, stored_instance)
    assert isinstance(result, SkipReason)
    assert "no abalone predictions served on 2026-11-23" in result.skip_message


def test_one_monitoring_schedule_runs_each_data_set_that_served_today(
    builtin_specs, settings, stored_instance
):
    for ds in ("abalone", "iris"):
        publish_champion_pointer(settings, ds)
        serve_predictions(settings, ds, "2026-11-23")
    schedule, requests = evaluate_monitoring(
        list(builtin_specs.values()), settings, stored_instance
    )
    assert schedule.name == "monitoring"
    monitored = {
        ds: [AssetKey([ds, name]) for name in ("prediction_log", "drift", "live_performance")]
        for ds in ("abalone", "iris")
    }
    # diabetes has no champion: passed over
    assert {r.tags[DATASET_TAG]: r.asset_selection for r in requests} == monitored


def test_monitoring_runs_again_only_when_the_logs_of_the_day_changed(
    builtin_specs, settings, stored_instance
):
    iris = builtin_specs["iris"]
    publish_champion_pointer(settings, "iris")
    serve_predictions(settings, "iris", "2026-11-23")
    _, [request] = evaluate_monitoring([iris], settings, stored_instance)
    log, _ = monitoring_assets(iris)
    launched = materialize(  # the run the daemon launches for the request, with its tags
        [log], instance=stored_instance, resources=resources_for(settings),
        partition_key=request.partition_key, tags=request.tags,
    )  # fmt: skip
    assert launched.success
    _, unchanged = evaluate_monitoring([iris], settings, stored_instance)
    assert isinstance(unchanged, SkipReason)
    assert "nothing new in iris's logs of 2026-11-23 since its last run" in unchanged.skip_message
    with (settings.predictions_dir / "iris" / "2026-11-23.jsonl").open("a") as handle:
        handle.write('{"request_id": "r2"}\n')
    _, [again] = evaluate_monitoring([iris], settings, stored_instance)
    assert again.tags != request.tags


def test_monitoring_compares_the_shadow_while_a_challenger_is_published(
    builtin_specs, settings, stored_instance
):
    publish_champion_pointer(settings, "iris")
    serve_predictions(settings, "iris", "2026-11-23")
    pointer = '{"bundle": "v2-test", "manifest_sha256": "0"}'
    (settings.models_dir / "iris" / CHALLENGER_FILE).write_text(pointer)
    _, [request] = evaluate_monitoring([builtin_specs["iris"]], settings, stored_instance)
    assert request.asset_selection[-2:] == [
        AssetKey(["iris", "live_performance"]), AssetKey(["iris", "shadow_comparison"])
    ]  # fmt: skip


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
