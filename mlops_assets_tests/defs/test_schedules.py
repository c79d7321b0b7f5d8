from datetime import UTC, datetime

from dagster import DefaultScheduleStatus, build_schedule_context

from mlops_assets.defs.automation.sensors import (
    monitoring_job,
    monitoring_schedule,
    retrain_job,
    weekly_retrain_schedule,
)


def test_monitoring_refreshes_the_current_utc_day(builtin_specs):
    spec = builtin_specs["abalone"]
    schedule = monitoring_schedule(spec, monitoring_job(spec))
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 23, 23, 45, tzinfo=UTC)
    )
    request = schedule(context)
    assert request.partition_key == "2026-11-23"


def test_weekly_retrain_is_off_until_toggled(builtin_specs):
    spec = builtin_specs["abalone"]
    schedule = weekly_retrain_schedule(spec, retrain_job(spec))
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 1"
