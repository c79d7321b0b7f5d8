"""Confidence-based performance estimation on a synthetic covariate shift: P(label | input) is
fixed, the inputs move towards the classes' boundaries, the accuracy drops and the estimate,
made without a single label of the window, follows it."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from mlops_assets.lib import estimated

# 5,000 rows each: the window's realized accuracy alone varies by ~0.006 (one standard deviation
# at 0.75) and the estimate missed it by at most 0.020 over seeds 0-9 (the holdout's calibration
# error included); 0.03 leaves room for both and is small beside the ~0.13 drop it must follow
TOLERANCE = 0.03
ROWS = 5_000
LABELS = np.array(["a", "b", "c"])
ANGLES = np.deg2rad([90, 210, 330])
WEIGHTS = 2.0 * np.column_stack([np.cos(ANGLES), np.sin(ANGLES)])  # logits = x @ WEIGHTS.T


def sample(rng, center, scale):
    """Inputs from N(center, scale²), labels drawn from the fixed softmax of their logits."""
    x = rng.normal(center, scale, size=(ROWS, 2))
    logits = x @ WEIGHTS.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    codes = (rng.random((ROWS, 1)) > p.cumsum(axis=1)).sum(axis=1)
    return x, LABELS[codes]


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(0)
    x_train, y_train = sample(rng, 0.0, 2.0)
    # strong regularisation: an underconfident model, so the estimate needs the calibration
    model = LogisticRegression(C=0.0005).fit(x_train, y_train)
    x_holdout, y_holdout = sample(rng, 0.0, 2.0)
    x_window, y_window = sample(rng, [0.0, 0.3], 0.8)  # near the boundaries: less certain
    return model, (x_holdout, y_holdout), (x_window, y_window)


def test_the_estimate_follows_the_realized_metrics_under_covariate_shift(shifted):
    model, (x_holdout, y_holdout), (x_window, y_window) = shifted
    calibrator = estimated.calibrate(model.classes_, model.predict_proba(x_holdout), y_holdout)
    predicted = model.predict(x_window)
    estimate = estimated.estimate(calibrator, model.predict_proba(x_window), predicted)
    realized = {
        "accuracy": accuracy_score(y_window, predicted),
        "f1_macro": f1_score(y_window, predicted, average="macro"),
    }
    holdout = accuracy_score(y_holdout, model.predict(x_holdout))
    assert estimate["estimated_rows"] == ROWS
    assert holdout - realized["accuracy"] > 0.1  # the shift costs accuracy
    for metric, value in realized.items():
        assert estimate[metric] == pytest.approx(value, abs=TOLERANCE), metric
    assert holdout - estimate["accuracy"] > 0.1  # the estimate moved, not the holdout's number
    raw_confidence = model.predict_proba(x_window).max(axis=1).mean()
    assert abs(raw_confidence - realized["accuracy"]) > 0.2  # uncalibrated it would be far off


def test_logged_probabilities_become_a_matrix_in_the_model_class_order():
    logged = [json.dumps({"b": 0.75, "a": 0.25}), {"c": 1.0}]
    matrix = estimated.probability_matrix(["a", "b", "c"], logged)
    assert matrix.tolist() == [[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]]


def test_a_perfectly_calibrated_certain_model_is_estimated_exactly():
    classes = ["no", "yes"]
    certain = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
    calibrator = estimated.calibrate(classes, certain, ["no", "yes"] * 50)
    window = np.array([[1.0, 0.0]] * 30 + [[0.0, 1.0]] * 10)
    result = estimated.estimate(calibrator, window, ["no"] * 30 + ["yes"] * 10)
    assert result == {"estimated_rows": 40, "accuracy": 1.0, "f1_macro": 1.0}


def test_predictions_of_unknown_classes_are_left_out():
    calibrator = estimated.calibrate(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    result = estimated.estimate(calibrator, np.array([[0.9, 0.1], [0.5, 0.5]]), ["a", "zzz"])
    assert result["estimated_rows"] == 1
    assert estimated.estimate(calibrator, np.zeros((1, 2)), ["zzz"]) == {"estimated_rows": 0}


def test_logged_rows_without_probabilities_are_left_out():
    served = pd.DataFrame(
        {
            "prediction": ["a", "b", "a"],
            "probabilities": [json.dumps({"a": 0.9, "b": 0.1}), None, "null"],
        }
    )
    assert estimated.with_probabilities(served)["prediction"].tolist() == ["a"]
    calibrator = estimated.calibrate(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    assert estimated.estimate_logged(calibrator, served)["estimated_rows"] == 1
