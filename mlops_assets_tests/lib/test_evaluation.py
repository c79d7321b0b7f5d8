"""Evaluation numbers: bootstrap intervals, permutation importance, slices and the slice gate."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops_assets.lib import evaluation, metric_arrays, training
from mlops_assets.lib.promotion import Decision
from mlops_assets.lib.spec import parse_spec

SPEC = """
name: synth
source: synth.csv
columns:
  - {{name: signal, type: float}}
  - {{name: noise, type: float}}
  - {{name: group, type: category, allowed: [a, b, c]}}
  - {{name: y, type: {target_type}}}
target: y
task: {task}
{extra}
"""


def spec_for(task="regression", extra="", target_type="float"):
    text = SPEC.format(task=task, extra=extra, target_type=target_type)
    return parse_spec(text, Path("synth.yaml"))


def frame(rows: int, seed: int, weak_group_noise: float = 0.0):
    """y = 2 * signal + 1 on group `b` (+ noise on group `c` when planted); `noise` carries
    nothing."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "signal": rng.normal(size=rows),
            "noise": rng.normal(size=rows),
            "group": rng.choice(np.array(["a", "b", "c"], dtype=object), rows),
        }
    )
    y = 2 * x["signal"] + (x["group"] == "b") + rng.normal(scale=0.3, size=rows)
    y = y + (x["group"] == "c") * rng.normal(scale=weak_group_noise, size=rows)
    return x, y.to_numpy()


def linear(x, y):
    prepare = ColumnTransformer(
        [("group", OneHotEncoder(), ["group"]), ("numbers", "passthrough", ["signal", "noise"])]
    )
    return Pipeline([("prepare", prepare), ("model", LinearRegression())]).fit(x, y)


def evaluated(spec, rows=2000, weak=0.0, seed=0):
    x_train, y_train = frame(rows, seed, weak)
    x_test, y_test = frame(rows // 4, seed + 1, weak)
    model = linear(x_train, y_train)
    reference = training.baseline(spec, x_train, y_train, x_test, y_test).model
    evaluated = evaluation.evaluate(spec, model, reference, x_train, y_train, x_test, y_test)
    return evaluated, model, x_test, y_test


@pytest.mark.parametrize("metric", ["r2", "rmse", "mae"])
def test_array_metrics_equal_sklearns_on_the_whole_holdout(metric):
    x, y = frame(500, 0)
    model = linear(x, y)
    scored = metric_arrays.score("regression", model, x, y)
    ours = metric_arrays.values(metric, scored, np.arange(len(x))[None, :])[0]
    assert ours == pytest.approx(
        training.holdout_metrics("regression", model, x, y)[f"test_{metric}"]
    )


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "log_loss"])
def test_array_metrics_equal_sklearns_for_classifiers(metric):
    x, y = frame(600, 0)
    labels = np.where(y > 0.5, "high", np.where(y < -0.5, "low", "mid"))
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(
        x[["signal", "noise"]], labels
    )
    x_test, y_test = frame(300, 1)
    test_labels = np.where(y_test > 0.5, "high", np.where(y_test < -0.5, "low", "mid"))
    x_test = x_test[["signal", "noise"]]
    scored = metric_arrays.score("classification", model, x_test, test_labels)
    ours = metric_arrays.values(metric, scored, np.arange(len(x_test))[None, :])[0]
    expected = training.holdout_metrics("classification", model, x_test, test_labels)
    assert ours == pytest.approx(expected[f"test_{metric}"])


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_rows():
    spec = spec_for()
    small, *_ = evaluated(spec, rows=400)
    large, *_ = evaluated(spec, rows=8000)
    widths = []
    for result in (small, large):
        interval = result.intervals["test_r2"]
        assert interval["low"] < interval["estimate"] < interval["high"]
        widths.append(interval["high"] - interval["low"])
        baseline = result.intervals["baseline_test_r2"]
        assert baseline["low"] <= baseline["estimate"] <= baseline["high"]
        assert result.intervals["improvement_over_baseline"]["low"] > 0.5  # far above the dummy
    assert widths[1] < widths[0] / 2  # 20x the rows: about 1/sqrt(20) of the width


def test_bootstrap_is_seeded():
    spec = spec_for()
    assert evaluated(spec)[0].intervals == evaluated(spec)[0].intervals


def test_a_lower_is_better_metric_has_a_positive_improvement_over_the_baseline():
    result, *_ = evaluated(spec_for(extra="metric: rmse"))
    rmse, dummy = result.intervals["test_rmse"], result.intervals["baseline_test_rmse"]
    assert rmse["estimate"] < dummy["estimate"]
    assert result.intervals["improvement_over_baseline"]["estimate"] == pytest.approx(
        dummy["estimate"] - rmse["estimate"]
    )


def test_permutation_importance_ranks_the_noise_column_last_per_input_field():
    result, *_ = evaluated(spec_for())
    fields = [row["field"] for row in result.importance]
    # one value per input column (not per one-hot column), the pure-noise column last
    assert fields == ["signal", "group", "noise"]
    signal = result.importance[0]
    assert signal["mean"] > 1 and signal["std"] > 0
    noise = next(row for row in result.importance if row["field"] == "noise")
    assert abs(noise["mean"]) < 0.01


def test_slices_have_row_counts_and_numeric_bins_from_the_training_rows():
    result, _, x_test, _ = evaluated(spec_for())
    groups = [s for s in result.slices if s["feature"] == "group"]
    assert {s["slice"] for s in groups} == {"a", "b", "c"}
    assert sum(s["rows"] for s in groups) == len(x_test)
    bins = [s for s in result.slices if s["feature"] == "signal"]
    assert len(bins) == 4 and sum(s["rows"] for s in bins) == len(x_test)
    x_train, _ = frame(2000, 0)
    median = float(np.quantile(x_train["signal"], 0.5))
    assert any(s["slice"].endswith(f", {median:.4g}]") for s in bins)


def test_a_planted_weak_slice_trips_the_slice_gate_naming_it():
    spec = spec_for(extra="slices: [group]\ngates: {max_slice_gap: 0.1}")
    result, *_ = evaluated(spec, weak=3.0)
    groups = sorted((s for s in result.slices if s["feature"] == "group"), key=lambda s: -s["gap"])
    assert groups[0]["slice"] == "c" and groups[0]["gap"] > 0.1
    assert not result.slice_gate.passed
    assert "slice group = c" in result.slice_gate.reason
    assert "max_slice_gap 0.1" in result.slice_gate.reason
    decision = result.gated(Decision(True, True, "initial: no champion yet"))
    assert not decision.promote and decision.beats_baseline
    assert decision.kind == "slice gap"


def test_without_a_weak_slice_the_gate_passes_and_the_decision_stands():
    spec = spec_for(extra="slices: [group]\ngates: {max_slice_gap: 0.1}")
    result, *_ = evaluated(spec)
    assert result.slice_gate.passed
    decision = Decision(True, True, "initial: no champion yet")
    assert result.gated(decision) is decision


def test_no_slice_gate_without_the_spec_field():
    result, *_ = evaluated(spec_for(), weak=3.0)
    assert result.slice_gate is None


def test_a_slice_gate_needs_the_slices_it_checks():
    with pytest.raises(ValueError, match="max_slice_gap needs `slices`"):
        spec_for(extra="gates: {max_slice_gap: 0.1}")
    with pytest.raises(ValueError, match=r"slices \['nope'\] are not feature columns"):
        spec_for(extra="slices: [nope]")
