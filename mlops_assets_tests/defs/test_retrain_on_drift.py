"""One retrain_on_drift sensor over every data set: each data set's latest drift evaluation is
judged once, and only a drifted one with new validated data requests a retrain of its assets."""

import json

from dagster import AssetKey, AssetMaterialization, build_sensor_context

from mlops_assets.defs.automation.sensors import retrain_on_drift_sensor
from mlops_assets.defs.keys import DATASET_TAG, TRIGGER_TAG


def report(instance, ds: str, name: str, **metadata) -> None:
    key = AssetKey([ds, name])
    instance.report_runless_asset_event(AssetMaterialization(asset_key=key, metadata=metadata))


def tick(sensor, instance, cursor=None):
    return sensor(build_sensor_context(instance=instance, cursor=cursor))


def test_each_data_sets_drift_is_judged_apart_and_once(builtin_specs, instance):
    sensor = retrain_on_drift_sensor(builtin_specs.values())
    assert sensor.name == "retrain_on_drift"
    assert tick(sensor, instance).skip_reason.skip_message == "no new drift evaluation"

    report(instance, "iris", "candidates")
    report(instance, "iris", "validated")  # newer than the last training: something to learn
    report(instance, "iris", "drift", dataset_drift=True)
    report(instance, "abalone", "drift", dataset_drift=False)
    first = tick(sensor, instance)
    [request] = first.run_requests
    assert request.tags[DATASET_TAG] == "iris" and request.tags[TRIGGER_TAG] == "drift"
    assert request.asset_selection == [
        AssetKey(["iris", name]) for name in ("features", "candidates", "champion_model")
    ]
    assert set(json.loads(first.cursor)) == {"iris", "abalone"}

    assert tick(sensor, instance, first.cursor).run_requests == []  # each evaluation once
    report(instance, "abalone", "drift", dataset_drift=True)  # abalone has no validated data
    alone = tick(sensor, instance, first.cursor)
    assert alone.run_requests == []
    assert "abalone: dataset drift" in alone.skip_reason.skip_message
    assert "nothing new to learn from" in alone.skip_reason.skip_message
