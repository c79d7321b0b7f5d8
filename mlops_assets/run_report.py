"""One line per Dagster run that finished while `mlops demo` runs, and per failed check."""

from __future__ import annotations

from datetime import UTC, datetime

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


class RunReport:
    """Polls the instance (imported lazily: Dagster takes seconds to import)."""

    def __init__(self, say):
        # from the first poll: the demo's own build runs before it and says what it built
        self.say, self.since, self.seen = say, None, set()
        self.instance = None

    def __call__(self) -> None:
        from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

        from mlops_assets.defs import keys

        if self.instance is None:
            self.since = datetime.now(UTC)
            self.instance = DagsterInstance.get()
        statuses = [DagsterRunStatus(status) for status in FINISHED]
        runs = self.instance.get_runs(RunsFilter(statuses=statuses, updated_after=self.since))
        for run in reversed(runs):
            if run.run_id in self.seen:
                continue
            self.seen.add(run.run_id)
            dataset = keys.run_datasets(run.tags, run.asset_selection)
            self.say(f"run {run.run_id[:8]} {run.job_name} ({dataset}): {run.status.value}")
            for record in self.instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                evaluation = record.dagster_event.event_specific_data
                if not evaluation.passed:
                    key = evaluation.asset_key.to_user_string()
                    self.say(f"  check {key}:{evaluation.check_name} failed")
