"""`<ds>/prediction_log` backfilled over two days, twice: the table holds each record once."""

import json

import duckdb
from dagster import AssetKey, materialize

from mlops_assets.components.dataset import dataset_definitions
from mlops_assets.defs.resources import resources_for


def write_day(folder, day, count, torn=False):
    lines = [
        json.dumps(
            {
                "request_id": f"{day}-{index}",
                "timestamp": f"{day}T12:00:00+00:00",
                "model": "iris",
                "version": "1",
                "input": {
                    "sepal_length": 5.0,
                    "sepal_width": 3.0,
                    "petal_length": 1.5,
                    "petal_width": 0.2,
                },
                "output": {"prediction": "setosa", "probabilities": {"setosa": 1.0}},
                "latency_ms": 1.0,
            }
        )  # fmt: skip
        for index in range(count)
    ]
    (folder / f"{day}.jsonl").write_text("\n".join(lines) + "\n" + ('{"request' if torn else ""))


def test_backfill_over_two_days_is_idempotent(settings, instance, builtin_specs):
    folder = settings.data_dir / "predictions" / "iris"
    folder.mkdir(parents=True)
    write_day(folder, "2026-11-21", 3)
    write_day(folder, "2026-11-22", 2, torn=True)
    assets = list(dataset_definitions(builtin_specs["iris"]).assets)
    for _ in range(2):
        for day in ("2026-11-21", "2026-11-22"):
            result = materialize(
                assets,
                selection=[AssetKey(["iris", "prediction_log"])],
                partition_key=day,
                instance=instance,
                resources=resources_for(settings),
            )
            assert result.success
    metadata = result.asset_materializations_for_node("iris__prediction_log")[0].metadata
    assert metadata["torn_lines_skipped"].value == 1
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute(
            "SELECT _day::VARCHAR, count(*), count(DISTINCT request_id) "
            "FROM iris.prediction_log GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("2026-11-21", 3, 3), ("2026-11-22", 2, 2)]
