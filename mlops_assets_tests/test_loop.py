"""The whole loop: build, serve, shifted traffic, prediction log, drift, and a retrain only when
there is something new to learn from (and no version minted from unchanged inputs)."""

from datetime import UTC, datetime

import duckdb
import pytest
from dagster import (
    AssetKey,
    Definitions,
    RunRequest,
    SkipReason,
    build_sensor_context,
    materialize,
)
from mlflow.tracking import MlflowClient

from mlops_assets.build import build_dataset
from mlops_assets.components.dataset import datasets_definitions
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


@pytest.fixture
def served_iris(settings, instance, builtin_specs, make_server):
    """iris built (champion v1) and served; its definitions bound to the test's resources."""
    spec = builtin_specs["iris"]
    defs = Definitions.merge(
        datasets_definitions([spec]), Definitions(resources=resources_for(settings))
    )
    assert build_dataset(spec, settings, instance).success
    return spec, defs, make_server(settings.data_dir, log_flush_interval=0.1)


def test_shifted_traffic_alerts_and_retrains_only_on_new_data(settings, instance, served_iris):
    spec, defs, server = served_iris
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
        records = traffic.sample_records(con, spec, 604, shifted, seed=3).records
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
    sensor = defs.resolve_sensor_def("retrain_on_drift")
    assert not [r for r in evaluate(sensor, instance, defs) if isinstance(r, RunRequest)]

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

    # drift alone: alerted above, but the served inputs carry no labels, so no retrain
    [skip] = evaluate(sensor, instance, defs)
    assert isinstance(skip, SkipReason) and "nothing new to learn from" in skip.skip_message

    # new validated data (the same partition validated again stands in for a new file)
    validated = AssetKey(["iris", "validated"])
    [partition] = instance.get_materialized_partitions(validated)
    run(defs, settings, instance, validated, partition)
    [request] = evaluate(sensor, instance, defs)
    assert request.run_key == f"drift-episode-{drift.run_id}"
    retrained = run(defs, settings, instance, list(request.asset_selection), tags=request.tags)
    # the same rows, spec and code: no new version is minted, the server keeps v1
    trained = retrained.asset_materializations_for_node("iris__candidates")[0].metadata
    assert trained["unchanged_inputs"].value is True
    assert [str(v.version) for v in MlflowClient().search_model_versions("name = 'iris'")] == ["1"]
    assert served_version(client, "iris") == "1"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        history = con.execute(
            "SELECT version, previous_version, reason, trigger FROM iris.champion_history"
        ).fetchall()
    assert history == [("1", None, "initial", "mlops build")]

    # the next evaluation is the same drift episode: the same run key, which Dagster runs once
    run(defs, settings, instance, AssetKey(["iris", "drift"]))
    run(defs, settings, instance, validated, partition)
    [again] = evaluate(sensor, instance, defs)
    assert again.run_key == request.run_key
    client.close()


def evaluate(sensor, instance, defs) -> list:
    """What the sensor returns for the latest drift evaluation: RunRequests, or its SkipReason."""
    result = sensor(build_sensor_context(instance=instance, definitions=defs))
    return list(result.run_requests) or [result.skip_reason]


def test_labels_sent_back_measure_the_champion_on_live_traffic(settings, instance, served_iris):
    spec, defs, server = served_iris
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        sample = traffic.sample_records(con, spec, 300, {}, seed=5)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    logs = [
        settings.feedback_dir / "iris" / f"{today}.jsonl",
        settings.predictions_dir / "iris" / f"{today}.jsonl",
    ]

    evaluation = {"sensor": defs.resolve_sensor_def("live_evaluation"), "cursor": None}

    def measure(labels: list, lines: int):
        """Send the sample with `labels`; once both logs hold `lines` lines in all, load them:
        the live_evaluation sensor asks for the day's live performance, which is run as asked."""
        sent = traffic.deliver(server.url, "iris", sample.records, 50, labels)
        assert sent.requests == {200: 6} and sent.labels == {200: 300}
        server.wait_until(
            lambda: all(log.is_file() and log.read_text().count("\n") >= lines for log in logs)
        )
        run(defs, settings, instance, AssetKey(["iris", "prediction_log"]), today)
        run(defs, settings, instance, AssetKey(["iris", "labels"]))
        context = build_sensor_context(
            instance=instance, cursor=evaluation["cursor"], resources=resources_for(settings)
        )
        result = evaluation["sensor"](context)
        evaluation["cursor"] = result.cursor
        [request] = result.run_requests
        assert request.partition_key == today
        assert request.asset_selection == [AssetKey(["iris", "live_performance"])]
        return run(defs, settings, instance, request.asset_selection, today, request.tags)

    honest = measure(sample.actuals, 300)
    [check] = honest.get_asset_check_evaluations()
    assert check.passed, check.metadata["verdict"].value  # true labels: as good as the holdout
    # the served version calibrated on its holdout estimates the traffic it served
    live = honest.asset_materializations_for_node("iris__live_performance")[0].metadata
    assert isinstance(live["estimated_f1_macro/v1"].value, float)
    assert live["estimated_rows/v1"].value == 300
    corrupted = measure(traffic.wrong_labels(sample.actuals, 0.5, seed=5), 600)
    [check] = corrupted.get_asset_check_evaluations()
    assert not check.passed and "outside the holdout interval" in check.metadata["verdict"].value
    # published beside the bundles as live.json, exported by the server on its next reload
    client = server.client()
    server.wait_until(
        lambda: (
            'mlops_live_within_holdout{model="iris",version="1"} 0.0' in client.get("/metrics").text
        )
    )
    metrics = client.get("/metrics").text
    assert 'mlops_live_labelled{model="iris",version="1"} 600.0' in metrics
    assert 'mlops_live_metric{metric="f1_macro",model="iris",version="1"}' in metrics
    assert 'mlops_live_estimated_metric{metric="f1_macro",model="iris",version="1"}' in metrics
    shown = client.get("/models/iris").json()["live"]  # what the web page shows
    assert (shown["version"], shown["served"], shown["labelled"], shown["coverage"]) == (
        "1",
        600,
        600,
        1.0,
    )
    assert shown["metrics"]["f1_macro"] < 0.8 and 0.5 < shown["estimated"]["f1_macro"] <= 1
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        labelled = con.execute(
            "SELECT labelled, estimate < 0.8 FROM iris.live_performance "
            "WHERE metric = 'f1_macro' AND version = '1'"
        ).fetchall()
    # the second traffic is new requests: 600 labelled in all, the corrupted half pulls F1 down
    assert labelled == [(600, True)]

    # the drop lands the champion's labelled requests as training rows, once
    landed = corrupted.asset_materializations_for_node("iris__live_performance")[0].metadata
    name = f"labelled-{today}-v1.csv"
    # only the pairs of (record, label) the data set lacks: the replayed rows with their true
    # label are training rows already, those with a wrong one are not
    file = settings.data_dir / "landing" / "iris" / name
    new_rows = len(file.read_text().splitlines()) - 1
    assert 0 < new_rows < 300
    assert landed["training_rows"].value.startswith(f"{new_rows} new labelled rows of version 1")
    again = run(defs, settings, instance, AssetKey(["iris", "live_performance"]), today)
    note = again.asset_materializations_for_node("iris__live_performance")[0].metadata
    assert note["training_rows"].value.startswith(f"{name} was landed before")
    # the landing sensor ingests it like any new file: a raw partition, every line validated
    context = build_sensor_context(instance=instance, resources=resources_for(settings))
    sensed = defs.resolve_sensor_def("landing")(context)
    assert [r.partition_key for r in sensed.run_requests] == [name]
    [added] = sensed.dynamic_partitions_requests
    instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
    ingest = [AssetKey(["iris", "raw"]), AssetKey(["iris", "validated"])]
    ingested = run(defs, settings, instance, ingest, name)
    checked = {c.check_name: c.passed for c in ingested.get_asset_check_evaluations()}
    assert checked["every_line_accounted"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute(
            "SELECT count(*) FROM iris.validated WHERE _partition = $p", {"p": name}
        ).fetchone()
    assert rows == (new_rows,)
