"""Materialize a data set's whole graph once, in one Dagster run, and say what happened."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field

from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    Field,
    colored_console_logger,
    define_asset_job,
    logger,
)

from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs import keys
from mlops_assets.defs.ingestion.partitions import add_source_partitions
from mlops_assets.defs.resources import resources_for
from mlops_assets.lib import promotion, training  # noqa: F401 - the steps import them lazily
from mlops_assets.lib.sources import fetch_source, initial_partition
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.recovery import process_tags
from mlops_assets.run_watch import BUILD_TAG, RunWatch
from mlops_assets.settings import Settings


@dataclass
class BuildOutcome:
    dataset: str
    run_id: str
    success: bool
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False  # SIGINT / SIGTERM arrived during the run

    def describe(self) -> str:
        if self.success:
            return f"{self.dataset}: built (run {self.run_id})"
        return f"{self.dataset}: FAILED (run {self.run_id}): " + "; ".join(self.failures)


BUILD_JOB = "__ephemeral_asset_job__"  # the name `materialize` gives its job
STACK_TRACE = re.compile(r"\n*Stack Trace:\n(?:[ \t].*(?:\n|$))*")


@logger(
    {
        "log_level": Field(str, is_required=False, default_value="INFO"),
        "name": Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's console logger; a failure's stack trace is left to the Dagster UI.",
)
def short_console_logger(init_context) -> logging.Logger:
    console = colored_console_logger.logger_fn(init_context)
    for handler in console.handlers:
        handler.addFilter(_without_stack_trace)
    return console


def _without_stack_trace(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if STACK_TRACE.search(message):
        short = STACK_TRACE.sub("\n", message).rstrip()
        record.msg, record.args = f"{short}\n(the stack trace: the run in the Dagster UI)", ()
    return True


def build_dataset(spec: DatasetSpec, settings: Settings, instance: DagsterInstance) -> BuildOutcome:
    """Fetch the source (raising SourceUnavailable), then materialize every asset of `spec`."""
    fetch_source(spec, settings.sources_dir)
    add_source_partitions([spec], instance)
    partition = initial_partition(spec)
    build_id = uuid.uuid4().hex
    tags = {**keys.run_tags(spec.name, "mlops build"), BUILD_TAG: build_id}
    # what `materialize` runs, with a console logger that leaves stack traces to the UI
    definitions = Definitions(
        jobs=[define_asset_job(BUILD_JOB)],
        assets=dataset_assets(spec),
        resources=resources_for(settings),
        loggers={"console": short_console_logger},
    )
    with RunWatch(instance, build_id, keys.POOL) as watch:
        result = definitions.resolve_job_def(BUILD_JOB).execute_in_process(
            instance=instance,
            partition_key=partition,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags={**tags, **process_tags()},
        )
    return BuildOutcome(
        spec.name, result.run_id, result.success, failures_of(result), watch.interrupted is not None
    )


def failures_of(result) -> list[str]:
    """Failed gates and failed steps, in words a person can act on."""
    failures = [
        f"gate {evaluation.asset_key.to_user_string()}:{evaluation.check_name} failed"
        + _check_detail(evaluation)
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    for event in result.get_step_failure_events():
        user_failure = event.step_failure_data.user_failure_data
        if user_failure and user_failure.description:
            message = user_failure.description
        else:
            message = _root_cause(event.step_failure_data.error)
        failures.append(f"step {event.step_key} failed: {message}")
    if not failures and not result.success:
        failures.append(_run_failure_message(result))
    return failures


def _run_failure_message(result) -> str:
    """Why a run failed when no gate or step says so (e.g. a resource could not start)."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.RUN_FAILURE:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            return _root_cause(error) if error else (event.message or "the run failed")
    return "the run failed without a failure event (see the run in the Dagster UI)"


def _root_cause(error) -> str:
    while error.cause is not None:
        error = error.cause
    return error.message.strip() or error.cls_name or "unknown error"


def _check_detail(evaluation) -> str:
    shown = {
        key: value.value
        for key, value in evaluation.metadata.items()
        if isinstance(value.value, int | float | str | list) and key != "file_columns"
    }
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""
