"""The champion against its shadowed challenger on constructed logs: agreement on the same
request rows, and the paired comparison on the labelled ones."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from mlops_assets.lib import labels, shadow
from mlops_assets.lib.evaluation import RESAMPLES, SEED
from mlops_assets.lib.prediction_table import SHADOW_LOG, load_day
from mlops_assets.lib.spec import LiveEvidence
from mlops_assets_tests.lib.test_prediction_table import record, write_log

DAY = "2026-11-23"
# per request row: (request id, champion's label, challenger's label, the true label or None)
ROWS = [
    ("a", "setosa", "setosa", "setosa"),
    ("b", "setosa", "versicolor", "versicolor"),  # a batch of three rows
    ("b", "virginica", "virginica", "virginica"),
    ("b", "versicolor", "virginica", "virginica"),
    ("c", "versicolor", "versicolor", "versicolor"),
    ("d", "setosa", "virginica", "virginica"),
    ("e", "virginica", "versicolor", "versicolor"),
    ("f", "versicolor", "versicolor", None),
    ("g", "setosa", "versicolor", None),
    ("h", "virginica", "virginica", "setosa"),
]


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def load_logs(con, iris, tmp_path, rows=ROWS):
    champion = [record(r[0], 1, "1", prediction=r[1]) for r in rows]
    challenger = [record(r[0], 1, "2", prediction=r[2]) for r in rows]
    challenger.append(record("only-in-shadow", 1, "2", prediction="setosa"))
    load_day(con, iris, write_log(tmp_path / "log.jsonl", champion), DAY)
    load_day(con, iris, write_log(tmp_path / "shadow.jsonl", challenger), DAY, SHADOW_LOG)
    positions: dict[str, int] = {}
    kept = []
    for request_id, _, _, actual in rows:
        row = positions.get(request_id, 0)
        positions[request_id] = row + 1
        if actual is not None:
            kept.append({"request_id": request_id, "row": row, "actual": actual,
                         "observed_at": None, "received_at": f"{DAY}T05:00:00+00:00",
                         "source": "test"})  # fmt: skip
    if kept:  # else no labels table at all, as before any label arrived
        rejected = pd.DataFrame(columns=["source", "line", "reason"])
        labels.store(con, iris, pd.DataFrame(kept), rejected)


def test_agreement_and_the_paired_comparison_on_the_same_rows(con, tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    load_logs(con, iris, tmp_path)
    paired = shadow.paired_on(con, iris, DAY)
    assert len(paired) == len(ROWS)  # the request only the challenger saw is not paired
    (comparison,) = shadow.compare(iris, paired)
    assert (comparison.champion, comparison.challenger) == ("1", "2")
    assert comparison.paired == 10
    assert comparison.agreement == pytest.approx(5 / 10)
    labelled = [r for r in ROWS if r[3] is not None]
    truth = [r[3] for r in labelled]
    old = f1_score(truth, [r[1] for r in labelled], average="macro")
    new = f1_score(truth, [r[2] for r in labelled], average="macro")
    assert comparison.labelled == 8
    assert comparison.champion_value == pytest.approx(old)
    assert comparison.challenger_value == pytest.approx(new)
    assert comparison.improvement == pytest.approx(new - old)
    # paired: both versions on the same seeded resamples of the 8 labelled rows
    index = np.random.default_rng(SEED).integers(0, 8, size=(RESAMPLES, 8))
    gaps = [
        f1_score([truth[i] for i in rows], [labelled[i][2] for i in rows], average="macro")
        - f1_score([truth[i] for i in rows], [labelled[i][1] for i in rows], average="macro")
        for rows in index
    ]
    low, high = np.percentile(gaps, [2.5, 97.5])
    assert comparison.improvement_low == pytest.approx(low)
    assert comparison.improvement_high == pytest.approx(high)
    numbers, previous = comparison.history_metrics()
    assert numbers["live_f1_macro"] == comparison.challenger_value
    assert previous == {"live_f1_macro": comparison.champion_value, "labelled": 8}


def test_without_labels_only_agreement_is_measured(con, tmp_path, builtin_specs):
    iris = builtin_specs["iris"]
    load_logs(con, iris, tmp_path, [(*row[:3], None) for row in ROWS])
    (comparison,) = shadow.compare(iris, shadow.paired_on(con, iris, DAY))
    assert comparison.agreement == pytest.approx(0.5) and comparison.labelled == 0
    assert comparison.improvement is None and "no labelled request" in comparison.summary()


def many_rows(count: int, seed: int = 0) -> list[tuple]:
    """The challenger right on 90% of rows, the champion on 60%."""
    rng = np.random.default_rng(seed)
    classes = ["setosa", "versicolor", "virginica"]
    rows = []
    for index in range(count):
        truth = classes[index % 3]
        wrong = classes[(index + 1) % 3]
        champion = truth if rng.random() < 0.6 else wrong
        challenger = truth if rng.random() < 0.9 else wrong
        rows.append((f"r{index}", champion, challenger, truth))
    return rows


def with_option(spec, min_labelled: int):
    gates = spec.gates.model_copy(
        update={"promote_on_live_evidence": LiveEvidence(min_labelled=min_labelled)}
    )
    return spec.model_copy(update={"gates": gates})


def test_live_evidence_needs_enough_labels_a_positive_interval_and_the_published_pair(
    con, tmp_path, builtin_specs
):
    iris = builtin_specs["iris"]
    load_logs(con, iris, tmp_path, many_rows(300))
    (comparison,) = shadow.compare(iris, shadow.paired_on(con, iris, DAY))
    assert comparison.improvement_low > 0
    won, why = shadow.live_evidence(with_option(iris, 300), comparison, ("1", "2"))
    assert won and why == comparison.summary()
    won, why = shadow.live_evidence(with_option(iris, 301), comparison, ("1", "2"))
    assert not won and why.startswith("too few labelled requests to judge (300 < 301")
    won, why = shadow.live_evidence(with_option(iris, 300), comparison, ("1", "3"))
    assert not won and "not the published pair" in why
    won, why = shadow.live_evidence(iris, comparison, ("1", "2"))
    assert not won and "is not set" in why


def test_live_evidence_refuses_a_challenger_that_is_not_better_beyond_chance(
    con, tmp_path, builtin_specs
):
    iris = builtin_specs["iris"]
    rows = [(r[0], r[1], r[1], r[3]) for r in many_rows(300)]  # the same answers
    load_logs(con, iris, tmp_path, rows)
    (comparison,) = shadow.compare(iris, shadow.paired_on(con, iris, DAY))
    assert comparison.agreement == 1.0 and comparison.improvement == 0
    won, why = shadow.live_evidence(with_option(iris, 100), comparison, ("1", "2"))
    assert not won and why.startswith("not better beyond chance")


def test_the_option_refuses_too_few_labels_with_the_field_named(tmp_path):
    from mlops_assets.lib.spec import SpecError, parse_spec

    text = (
        "name: toy\nsource: toy.csv\ncolumns: [{name: x, type: float}, {name: y, type: float}]\n"
        "target: y\ntask: regression\ngates: {promote_on_live_evidence: {min_labelled: 5}}\n"
    )
    with pytest.raises(SpecError, match=r"gates.promote_on_live_evidence.min_labelled.*30"):
        parse_spec(text, tmp_path / "toy.yaml")
