"""The whole loop: build, serve, shifted traffic, prediction log, drift, retrain, hot swap."""

from datetime import UTC, datetime

import duckdb
import pytest
from dagster import AssetKey, Definitions, RunRequest, build_sensor_context, materialize

from mlops_assets.build import build_dataset
from mlops_assets.definitions import dataset_definitions
from mlops_assets.defs.automation.sensors import retrain_job, retrain_on_drift_sensor
from mlops_assets.defs.resources import resources_for
from mlops_assets.lib import traffic

pytestmark = pytest.mark.slow


def run(defs, settings, instance, key, partition=None, tags=None):
    result = materialize(
        list(defs.assets),
        selection=[key] if isinstance(key, AssetKey) else key,
        instance=instance,
        resources=resources_for(settings),
        partition_key=partition,
        tags=tags,
    )
    assert result.success
    return result


def served_version(client, name):
    return client.get(f"/models/{name}").json()["version"]


def test_shifted_traffic_drifts_retrains_and_the_server_swaps(
    settings, instance, builtin_specs, make_server
):
    spec = builtin_specs["iris"]
    defs = Definitions.merge(
        dataset_definitions(spec), Definitions(resources=resources_for(settings))
    )
    assert build_dataset(spec, settings, instance).success
    server = make_server(settings.data_dir, log_flush_interval=0.1)
    client = server.client()
    server.wait_until(lambda: client.get("/ready").status_code == 200)
    assert served_version(client, "iris") == "1"
    quiet = run(defs, settings, instance, AssetKey(["iris", "drift"]))
    assert (
        quiet.asset_materializations_for_node("iris__drift")[0].metadata["current_rows"].value == 0
    )  # no traffic yet: nothing to compare is not an alarm
    assert all(check.passed for check in quiet.get_asset_check_evaluations())

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        shifted = {"petal_length": 1.6, "petal_width": 1.5, "sepal_length": 1.3}
        records, _ = traffic.sample_records(con, spec, 604, shifted, seed=3)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    log_file = settings.data_dir / "predictions" / "iris" / f"{today}.jsonl"

    def log_and_measure(rows: int):
        server.wait_until(lambda: log_file.is_file() and log_file.read_text().count("\n") >= rows)
        logged = run(defs, settings, instance, AssetKey(["iris", "prediction_log"]), today)
        node = logged.asset_materializations_for_node("iris__prediction_log")[0]
        assert node.metadata["rows"].value == rows
        return run(defs, settings, instance, AssetKey(["iris", "drift"]))

    # four requests, like the README's curl examples, are too few to call anything drift
    assert traffic.send(server.url, "iris", records[:4], batch=1) == {200: 4}
    few = log_and_measure(4)
    metadata = few.asset_materializations_for_node("iris__drift")[0].metadata
    assert metadata["dataset_drift"].value is False
    assert metadata["verdict"].value.startswith("too small to judge (4 < 200")
    assert all(check.passed for check in few.get_asset_check_evaluations())
    sensor = retrain_on_drift_sensor(spec, retrain_job(spec))
    skipped = sensor(build_sensor_context(instance=instance, definitions=defs))
    assert not [r for r in (skipped or []) if isinstance(r, RunRequest)]

    assert traffic.send(server.url, "iris", records[4:]) == {200: 12}
    drift = log_and_measure(604)
    metadata = drift.asset_materializations_for_node("iris__drift")[0].metadata
    assert metadata["dataset_drift"].value is True
    assert {"petal_length", "petal_width"} <= set(metadata["drifted_features"].value)
    [check] = drift.get_asset_check_evaluations()
    assert check.check_name == "drift_within_threshold" and not check.passed
    assert check.severity.value == "ERROR"
    # published beside the bundles as drift.json, exported by the server on its next reload
    drift_gauge = 'mlops_dataset_drift{model="iris",version="1"} 1.0'
    server.wait_until(lambda: drift_gauge in client.get("/metrics").text)
    assert 'mlops_drift_feature_drifted{feature="petal_length",model="iris",version="1"} 1.0' in (
        client.get("/metrics").text
    )

    job = retrain_job(spec)
    context = build_sensor_context(instance=instance, definitions=defs)
    [request] = sensor(context)
    assert request.run_key == f"drift-{drift.run_id}"
    run(defs, settings, instance, list(job.selection.resolve(defs.resolve_asset_graph())),
        tags=request.tags)  # fmt: skip

    server.wait_until(lambda: served_version(client, "iris") == "2", timeout=15)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        history = con.execute(
            "SELECT version, previous_version, reason, trigger FROM iris.champion_history "
            "ORDER BY promoted_at"
        ).fetchall()
    # the retrain sees the same validated rows, so its model ties the champion (and replaces it)
    assert history == [("1", None, "initial", "mlops build"), ("2", "1", "tie", "drift")]
    client.close()
