"""`<ds>/labels` on a real Dagster instance, and the sensor that loads labels when they change."""

import json

import duckdb
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.monitoring.labels import (
    labels_asset,
    labels_sensor,
    live_performance_asset,
)
from mlops_assets.defs.resources import resources_for
from mlops_assets_tests.lib.test_prediction_table import record, write_log


def test_labels_are_loaded_and_joined_after_the_prediction_log(settings, builtin_specs):
    iris = builtin_specs["iris"]
    day = "2026-11-23"
    (settings.predictions_dir / "iris").mkdir(parents=True)
    write_log(settings.predictions_dir / "iris" / f"{day}.jsonl", [record("a", 1), record("b", 2)])
    (settings.labels_dir / "iris").mkdir(parents=True)
    (settings.labels_dir / "iris" / "week.csv").write_text(
        "request_id,actual\na,setosa\nzzz,virginica\nb,not-a-flower\n"
    )
    log, _ = monitoring_assets(iris)
    with DagsterInstance.ephemeral() as instance:
        resources = resources_for(settings)
        assert materialize([log], instance=instance, resources=resources, partition_key=day).success
        result = materialize([labels_asset(iris)], instance=instance, resources=resources)
        assert result.success
        [materialization] = result.asset_materializations_for_node("iris__labels")
    meta = {key: value.value for key, value in materialization.metadata.items()}
    assert (meta["labels"], meta["matched"], meta["unmatched"], meta["rejected"]) == (2, 1, 1, 1)
    assert meta["label_coverage"] == 0.5


def tick(sensor, settings, cursor=None):
    resources = {"source_files": resources_for(settings)["source_files"]}
    with DagsterInstance.ephemeral() as instance:
        return sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))


def test_the_sensor_loads_labels_once_they_settle_and_again_when_more_arrive(
    settings, builtin_specs
):
    sensor = labels_sensor([builtin_specs["iris"]])
    feedback = settings.feedback_dir / "iris"
    assert tick(sensor, settings).run_requests == []  # nothing yet
    feedback.mkdir(parents=True)
    line = json.dumps({"request_id": "a", "actual": "setosa"}) + "\n"
    (feedback / "2026-11-23.jsonl").write_text(line)
    seen = tick(sensor, settings)
    assert seen.run_requests == []  # changing files wait a tick
    settled = tick(sensor, settings, seen.cursor)
    assert len(settled.run_requests) == 1
    assert tick(sensor, settings, settled.cursor).run_requests == []  # nothing new
    with (feedback / "2026-11-23.jsonl").open("a") as handle:
        handle.write(line)
    again = tick(sensor, settings, tick(sensor, settings, settled.cursor).cursor)
    assert len(again.run_requests) == 1
    assert again.run_requests[0].run_key != settled.run_requests[0].run_key


def test_one_labels_sensor_watches_every_data_set_apart(settings, builtin_specs):
    sensor = labels_sensor(builtin_specs.values())
    assert sensor.name == "labels"
    line = json.dumps({"request_id": "a", "actual": "setosa"}) + "\n"
    for ds in ("iris", "abalone"):
        (settings.feedback_dir / ds).mkdir(parents=True)
        (settings.feedback_dir / ds / "2026-11-23.jsonl").write_text(line)
    seen = tick(sensor, settings)
    assert "iris" in seen.skip_reason.skip_message and seen.run_requests == []
    settled = tick(sensor, settings, seen.cursor)
    requests = {r.tags["mlops/dataset"]: r for r in settled.run_requests}
    assert set(requests) == {"iris", "abalone"}
    assert requests["iris"].run_key != requests["abalone"].run_key
    assert requests["abalone"].asset_selection == [AssetKey(["abalone", "labels"])]
    assert tick(sensor, settings, settled.cursor).run_requests == []


def test_live_performance_per_version_goes_into_the_history(settings, builtin_specs):
    iris = builtin_specs["iris"]
    day = "2026-11-23"
    (settings.predictions_dir / "iris").mkdir(parents=True)
    served = [record(f"r{i}", 1 + i % 20, version=str(1 + i % 2)) for i in range(40)]
    write_log(settings.predictions_dir / "iris" / f"{day}.jsonl", served)
    (settings.labels_dir / "iris").mkdir(parents=True)
    rows = [f"r{i},{'setosa' if i % 4 else 'virginica'}" for i in range(40)]
    (settings.labels_dir / "iris" / "all.csv").write_text("request_id,actual\n" + "\n".join(rows))
    log, _ = monitoring_assets(iris)
    assets = [log, labels_asset(iris), live_performance_asset(iris)]
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, instance=instance, resources=resources_for(settings),
                             partition_key=day)  # fmt: skip
        assert result.success
        [check] = result.get_asset_check_evaluations()
    assert check.passed and "too few labels" in check.metadata["verdict"].value  # 20 < 100
    with duckdb.connect(str(settings.warehouse_path)) as con:
        history = con.execute(
            "SELECT version, labelled, estimate FROM iris.live_performance "
            "WHERE metric = 'accuracy' ORDER BY version"
        ).fetchall()
    # every logged prediction is setosa; a quarter of the labels are virginica
    assert history == [("1", 20, 0.5), ("2", 20, 1.0)]
