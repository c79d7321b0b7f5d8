"""Labels from the server's feedback log and dropped files: all kept, the latest current,
joined to the prediction log by request id and row, bad lines rejected with a reason."""

import json
import os

import duckdb
import pandas as pd
import pytest

from mlops_assets.lib import labels
from mlops_assets.lib.prediction_table import load_day
from mlops_assets_tests.lib.test_prediction_table import record, write_log


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def feedback(request_id, actual, received, **extra) -> str:
    return json.dumps({"received_at": received, "model": "iris", "request_id": request_id,
                       "actual": actual, **extra})  # fmt: skip


def test_labels_are_kept_superseded_matched_and_rejected(con, tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    batch = [json.loads(record("b", 2)), json.loads(record("b", 2, prediction="virginica"))]
    log = write_log(tmp_path / "log.jsonl", [record("a", 1), *map(json.dumps, batch)])
    load_day(con, iris, log, "2026-11-23")
    api, drop = tmp_path / "feedback", tmp_path / "labels"
    api.mkdir(), drop.mkdir()
    write_log(api / "2026-11-23.jsonl", [
        feedback("a", "setosa", "2026-11-23T05:00:00+00:00"),
        feedback("a", "versicolor", "2026-11-23T06:00:00+00:00"),  # supersedes the first
        feedback("b", "virginica", "2026-11-23T07:00:00+00:00", row=1),
    ], torn='{"request_id": "c", "act')  # fmt: skip
    (drop / "late.csv").write_text(
        "request_id,actual,observed_at\nnever-served,setosa,2026-11-20\nb,tulip,\n"
    )
    os.utime(drop / "late.csv", (1_800_000_000, 1_800_000_000))

    kept, rejected = labels.collect(iris, labels.label_files(api, drop), api)
    summary = labels.store(con, iris, kept, rejected)

    assert (summary.labels, summary.current, summary.matched, summary.rejected) == (4, 3, 2, 2)
    assert summary.coverage == pytest.approx(2 / 3)
    assert summary.median_delay_s == pytest.approx(5 * 3600)  # 01:00 -> 06:00, 02:00 -> 07:00
    current = con.execute(
        "SELECT request_id, row, actual FROM iris.labels WHERE current ORDER BY 1"
    ).fetchall()
    assert current == [("a", 0, "versicolor"), ("b", 1, "virginica"), ("never-served", 0, "setosa")]
    matched = con.execute(f"SELECT request_id, prediction FROM ({labels.matched_sql(iris)}) "
                          "ORDER BY 1").fetchall()  # fmt: skip
    assert matched == [("a", "setosa"), ("b", "virginica")]  # b's second record, not its first
    reasons = dict(con.execute("SELECT source, reason FROM iris.labels_rejected").fetchall())
    assert reasons["api:2026-11-23.jsonl:4"] == "not a JSON object"
    assert "not one of the target's values" in reasons["file:late.csv:3"]


def test_a_regression_label_must_be_a_finite_number(con, tmp_path, builtin_specs):
    drop = tmp_path / "labels"
    drop.mkdir()
    write_log(drop / "x.jsonl", [json.dumps({"request_id": "r", "actual": v})
                                 for v in (9, "9.5", "nan", "ten")])  # fmt: skip
    kept, rejected = labels.collect(
        builtin_specs["abalone"], labels.label_files(tmp_path, drop), tmp_path
    )
    assert list(kept["actual"]) == [9.0, 9.5]
    assert list(rejected["reason"]) == ["actual: not finite: 'nan'", "actual: not a number: 'ten'"]


def test_live_metrics_match_scikit_learn_and_carry_an_interval(builtin_specs):
    from sklearn.metrics import accuracy_score, log_loss

    from mlops_assets.lib import live

    actual = ["setosa", "virginica", "setosa", "versicolor"] * 30
    predicted = ["setosa", "virginica", "versicolor", "versicolor"] * 30
    probabilities = [json.dumps({"setosa": 0.7, "versicolor": 0.2, "virginica": 0.1})] * 120
    frame = pd.DataFrame(
        {"actual": actual, "prediction": predicted, "probabilities": probabilities}
    )
    result = live.performance(builtin_specs["iris"], frame)
    assert result["labelled"] == 120
    assert result["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    expected = log_loss(
        actual, [[0.7, 0.2, 0.1]] * 120, labels=["setosa", "versicolor", "virginica"]
    )
    assert result["log_loss"] == pytest.approx(expected)
    assert result["f1_macro_low"] <= result["f1_macro"] <= result["f1_macro_high"]


def test_live_performance_is_judged_against_the_holdout_interval(builtin_specs):
    from mlops_assets.lib.live import verdict

    iris = builtin_specs["iris"]  # f1_macro, higher is better
    holdout = {"estimate": 0.95, "low": 0.9, "high": 0.99}
    assert verdict(iris, {"labelled": 20, "f1_macro": 0.2}, holdout)[1].startswith("too few labels")
    passed, why = verdict(iris, {"labelled": 500, "f1_macro": 0.7}, holdout)
    assert not passed and "outside the holdout interval" in why
    assert verdict(iris, {"labelled": 500, "f1_macro": 0.92}, holdout)[0]
    rmse = builtin_specs["abalone"].model_copy(update={"metric": "rmse"})  # lower is better
    assert not verdict(rmse, {"labelled": 500, "rmse": 3.0}, {"low": 2.0, "high": 2.4})[0]
