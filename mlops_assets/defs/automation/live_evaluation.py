"""What turns loaded labels into live evidence without clicks: the days a labels load touched get
their `<ds>/live_performance` (and, while a challenger is published, `<ds>/shadow_comparison`)
refreshed, so a degraded champion's check fails and lands its labelled rows (a retrain follows)
and live evidence can promote the challenger.

A sensor, not a Declarative Automation condition: `<ds>/labels` is unpartitioned, so to Dagster
it feeds every day of the daily assets alike, while only the days whose labelled predictions
changed (`days_touched` in the labels' metadata) are stale."""

import json
from collections.abc import Iterable

from dagster import (
    AssetRecordsFilter,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
)

from mlops_assets.defs import keys
from mlops_assets.defs.automation.sensors import (
    challenger_published,
    every_dataset_sensor,
    latest_materializations,
)
from mlops_assets.defs.keys import asset_key, run_tags
from mlops_assets.defs.monitoring.labels import DAYS_TOUCHED
from mlops_assets.defs.resources import ModelStore
from mlops_assets.lib.spec import DatasetSpec

LOADS_LOOKED_AT = 100  # labels loads read per data set and tick


def live_evaluation_sensor(specs: Iterable[DatasetSpec]) -> SensorDefinition:
    """One sensor over every data set's labels loads: the cursor holds, per data set, the
    storage id of the last load looked at; each tick finds the new ones in one query."""
    specs = list(specs)

    @every_dataset_sensor(
        "live_evaluation",
        [key for spec in specs for key in evaluated_keys(spec.name)],
        "After a data set's labels load, refreshes live_performance (and shadow_comparison "
        "while a challenger is published) for each day whose labelled predictions changed, "
        "once per load.",
    )
    def live_evaluation(context: SensorEvaluationContext, model_store: ModelStore) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        latest = latest_materializations(context.instance, specs, keys.LABELS)
        requests = []
        for spec in specs:
            seen, record = cursor.get(spec.name), latest.get(spec.name)
            if record is None or (seen is not None and record.storage_id <= seen):
                continue
            cursor[spec.name] = record.storage_id
            shadowed = challenger_published(model_store.dataset_dir(spec.name))
            for day, load in touched_days(context.instance, spec.name, seen).items():
                requests.append(evaluation_request(spec.name, day, load, shadowed))
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else "no labels load changed a day's labelled predictions",
            cursor=json.dumps(cursor),
        )

    return live_evaluation


def evaluated_keys(ds: str) -> list:
    return [asset_key(ds, keys.LIVE_PERFORMANCE), asset_key(ds, keys.SHADOW_COMPARISON)]


def touched_days(instance, ds: str, after: int | None) -> dict[str, int]:
    """Each day the labels loads after storage id `after` touched, with the last such load;
    without `after` (a first tick), the latest load's days."""
    found = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key(ds, keys.LABELS), after_storage_id=after),
        limit=LOADS_LOOKED_AT if after is not None else 1,
        ascending=after is not None,
    )
    days = {}
    for record in found.records:
        value = record.asset_materialization.metadata.get(DAYS_TOUCHED)
        for day in value.value if value is not None else []:
            days[day] = record.storage_id
    return days


def evaluation_request(ds: str, day: str, load: int, shadowed: bool) -> RunRequest:
    # keyed by the labels load: Dagster never launches a run key twice for a sensor
    selected = evaluated_keys(ds) if shadowed else evaluated_keys(ds)[:1]
    return RunRequest(
        run_key=f"{ds}/{day}@labels-{load}",
        partition_key=day,
        asset_selection=selected,
        tags=run_tags(ds, "labels"),
    )
