import json
from pathlib import Path

import duckdb
import pytest

from mlops_assets.lib.prediction_table import load_day, window


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def record(request_id, hour, version="1", length=5.1, prediction="setosa"):
    return json.dumps(
        {
            "request_id": request_id,
            "timestamp": f"2026-11-23T{hour:02d}:00:00+00:00",
            "model": "iris",
            "version": version,
            "input": {"sepal_length": length, "sepal_width": 3.5, "petal_length": 1.4,
                      "petal_width": 0.2},
            "output": {"prediction": prediction, "probabilities": {"setosa": 1.0}},
            "latency_ms": float(hour),
        }
    )  # fmt: skip


def write_log(path: Path, lines: list[str], torn: str = "") -> Path:
    path.write_text("\n".join(lines) + "\n" + torn)
    return path


def test_a_torn_last_line_is_skipped_and_counted(con, tmp_path, builtin_specs):
    path = write_log(tmp_path / "day.jsonl", [record("a", 1), record("b", 2, "2")], '{"request_')
    loaded = load_day(con, builtin_specs["iris"], path, "2026-11-23")
    assert (loaded.rows, loaded.torn_lines) == (2, 1)
    assert loaded.versions == ["iris v1", "iris v2"]
    assert loaded.latency_ms["p50"] == pytest.approx(1.5)
    row = con.execute("SELECT sepal_length, prediction FROM iris.prediction_log").fetchall()[0]
    assert row == (5.1, "setosa")


def test_reloading_a_day_replaces_it_and_other_days_stay(con, tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    day1 = write_log(tmp_path / "1.jsonl", [record("a", 1), record("b", 2)])
    day2 = write_log(tmp_path / "2.jsonl", [record("c", 3)])
    for _ in range(2):  # a backfill run twice: no duplicates anywhere
        load_day(con, iris, day1, "2026-11-22")
        load_day(con, iris, day2, "2026-11-23")
    counts = con.execute(
        "SELECT _day::VARCHAR, count(*) FROM iris.prediction_log GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert counts == [("2026-11-22", 2), ("2026-11-23", 1)]


def test_a_missing_file_is_an_empty_day(con, tmp_path, builtin_specs):
    loaded = load_day(con, builtin_specs["iris"], tmp_path / "absent.jsonl", "2026-11-23")
    assert (loaded.rows, loaded.torn_lines) == (0, 0)


def test_window_holds_the_last_days_of_inputs_and_outputs(con, tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    load_day(con, iris, write_log(tmp_path / "d.jsonl", [record("a", 1, length=6.0)]), "2026-11-23")
    frame, start, end = window(con, iris, days=7)
    assert list(frame.columns) == [
        "sepal_length", "sepal_width", "petal_length", "petal_width", "prediction"
    ]  # fmt: skip
    assert frame["sepal_length"].tolist() == [6.0]
    assert (end - start).days == 7
