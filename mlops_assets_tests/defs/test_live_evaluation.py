"""The `live_evaluation` sensor on a real instance: a labels load requests live_performance for
the days whose labelled predictions it changed, once, and the request runs."""

import duckdb
from dagster import AssetKey, build_sensor_context, materialize

from mlops_assets.defs.automation.live_evaluation import live_evaluation_sensor
from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.monitoring.labels import labels_asset, live_performance_asset
from mlops_assets.defs.resources import resources_for
from mlops_assets_tests.lib.test_prediction_table import record, write_log
from mlops_contract.bundle import CHALLENGER_FILE

DAYS = ("2026-11-23", "2026-11-24")


def serve_two_days(settings) -> None:
    folder = settings.predictions_dir / "iris"
    folder.mkdir(parents=True)
    for day in DAYS:
        lines = [record(f"{day}-r{i}", 1 + i).replace(DAYS[0], day) for i in range(4)]
        write_log(folder / f"{day}.jsonl", lines)


def label(settings, name: str, day: str, actual: str = "setosa") -> None:
    folder = settings.labels_dir / "iris"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{day}-r{i},{actual}\n" for i in range(4))
    (folder / name).write_text("request_id,actual\n" + rows)


class Loop:
    """iris's monitoring assets, the sensor and its cursor, on one instance."""

    def __init__(self, spec, settings, instance):
        log, _ = monitoring_assets(spec)
        self.assets = [log, labels_asset(spec), live_performance_asset(spec)]
        self.sensor, self.instance = live_evaluation_sensor([spec]), instance
        self.resources, self.cursor = resources_for(settings), None

    def run(self, selection, partition=None, tags=None):
        result = materialize(
            self.assets, selection=selection, instance=self.instance,
            resources=self.resources, partition_key=partition, tags=tags,
        )  # fmt: skip
        assert result.success
        return result

    def load_labels(self) -> list:
        result = self.run([AssetKey(["iris", "labels"])])
        [event] = result.asset_materializations_for_node("iris__labels")
        return event.metadata["days_touched"].value

    def tick(self, cursor="kept"):
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor if cursor == "kept" else cursor,
            resources={"model_store": self.resources["model_store"]},
        )
        result = self.sensor(context)
        self.cursor = result.cursor
        return result.run_requests


def test_a_labels_load_refreshes_the_days_it_touched_once(settings, instance, builtin_specs):
    loop = Loop(builtin_specs["iris"], settings, instance)
    serve_two_days(settings)
    for day in DAYS:
        loop.run([AssetKey(["iris", "prediction_log"])], day)
    assert loop.tick() == []  # no labels loaded yet

    label(settings, "first.csv", DAYS[0])
    assert loop.load_labels() == [DAYS[0]]
    [request] = loop.tick()
    assert request.partition_key == DAYS[0]
    assert request.asset_selection == [AssetKey(["iris", "live_performance"])]
    assert loop.tick() == []  # the same load is not looked at twice
    assert [r.run_key for r in loop.tick(cursor=None)] == [request.run_key]  # a lost cursor
    # asks again with the same run key, which Dagster never launches twice

    assert loop.load_labels() == []  # the same labels again change no day
    assert loop.tick() == []

    label(settings, "second.csv", DAYS[1])
    label(settings, "first.csv", DAYS[0], actual="virginica")  # corrected labels
    (settings.models_dir / "iris").mkdir(parents=True)
    pointer = '{"bundle": "v2-test", "manifest_sha256": "0"}'
    (settings.models_dir / "iris" / CHALLENGER_FILE).write_text(pointer)
    assert loop.load_labels() == list(DAYS)
    requests = {r.partition_key: r for r in loop.tick()}
    assert set(requests) == set(DAYS)
    assert requests[DAYS[1]].asset_selection[-1] == AssetKey(["iris", "shadow_comparison"])
    assert request.run_key not in {r.run_key for r in requests.values()}

    # what the daemon launches for the request: the day's live performance, from the new labels
    run = requests[DAYS[0]]
    loop.run([AssetKey(["iris", "live_performance"])], run.partition_key, run.tags)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        history = con.execute(
            "SELECT day, labelled, estimate FROM iris.live_performance WHERE metric = 'accuracy'"
        ).fetchall()
    assert [(str(day), labelled, value) for day, labelled, value in history] == [
        (DAYS[0], 4, 0.0)
    ]  # every prediction was setosa, every corrected label virginica
