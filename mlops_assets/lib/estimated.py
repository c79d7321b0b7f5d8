"""Estimated performance without labels: confidence-based performance estimation (CBPE, as
NannyML describes it) for classifiers.

A classifier's probabilities are calibrated on its holdout, where the labels are known: one
isotonic regression per class of "the label is this class" on the predicted probability of
that class (one-vs-rest), the calibrated rows normalised to sum to 1. On a window of served
predictions the calibrated probability of each class is the chance that it is the true label,
so summing them over the rows predicted as each class gives the expected confusion matrix, and
from it the expected metrics.

This holds while P(label | model output) stays as it was on the holdout: a covariate shift
(inputs move, the relation between input and label does not) is estimated, a concept shift is
not (only labels show it).

Estimated metrics: `accuracy` and `f1_macro` (macro F1 from the expected counts, per class
F1 = 2 TP / (2 TP + FP + FN), as NannyML does). `log_loss` is not estimated: its expectation
under calibrated probabilities is dominated by the coarse tail of the isotonic steps (a few
holdout labels pooled with tiny model probabilities), so it would say more about the holdout's
size than about the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from mlops_assets.lib.features import model_inputs
from mlops_assets.lib.spec import DatasetSpec

ESTIMATED_METRICS = ("accuracy", "f1_macro")


@dataclass(frozen=True)
class Calibrator:
    """One isotonic curve per class, in the order of `classes` (the model's `classes_`)."""

    classes: tuple[str, ...]
    curves: tuple[IsotonicRegression, ...]

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows x classes), each row summing to 1; a row every curve
        maps to 0 keeps the model's own probabilities."""
        columns = [curve.predict(probabilities[:, k]) for k, curve in enumerate(self.curves)]
        calibrated = np.column_stack(columns)
        totals = calibrated.sum(axis=1, keepdims=True)
        normalised = probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
        return np.where(totals > 0, calibrated / np.maximum(totals, 1e-12), normalised)


def calibrate(classes, probabilities: np.ndarray, actual) -> Calibrator:
    """Fit the calibration on holdout `probabilities` (rows x classes) and true labels."""
    actual = np.asarray([str(label) for label in actual])
    curves = []
    for k, label in enumerate(classes):
        curve = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        curves.append(curve.fit(probabilities[:, k], (actual == str(label)).astype(float)))
    return Calibrator(tuple(str(label) for label in classes), tuple(curves))


def probability_matrix(classes, logged) -> np.ndarray:
    """Rows x classes from logged probabilities (a JSON object or dict of label -> probability
    per row); a class a row does not name has probability 0."""
    rows = [json.loads(row) if isinstance(row, str) else row for row in logged]
    return np.array([[float(row.get(label, 0.0)) for label in classes] for row in rows]).reshape(
        len(rows), len(classes)
    )


def expected_confusion(calibrated: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Expected counts, [true class, predicted class]: each row adds its calibrated
    probabilities to the column of the class it was predicted as (`predicted`: class codes)."""
    classes = calibrated.shape[1]
    confusion = np.zeros((classes, classes))
    for k in range(classes):
        confusion[:, k] = calibrated[predicted == k].sum(axis=0)
    return confusion


def metrics_of(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of a (expected) confusion matrix; macro F1 over the classes with a
    positive expected count of true or predicted rows, as sklearn's average='macro'."""
    total = confusion.sum()
    hits = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    present = denominator > 1e-12
    f1 = 2 * hits[present] / denominator[present]
    return {
        "accuracy": float(hits.sum() / total) if total else float("nan"),
        "f1_macro": float(f1.mean()) if present.any() else float("nan"),
    }


def estimate(calibrator: Calibrator, probabilities: np.ndarray, predicted) -> dict[str, float]:
    """The expected metrics on a window: its served `probabilities` (rows x the calibrator's
    classes) and predicted labels. Rows predicted as a class the model does not know are left
    out; `estimated_rows` counts the rows used."""
    codes = {label: k for k, label in enumerate(calibrator.classes)}
    predicted = np.array([codes.get(str(label), -1) for label in predicted], dtype=int)
    known = predicted >= 0
    if not known.any():
        return {"estimated_rows": 0}
    calibrated = calibrator.calibrated(probabilities[known])
    result = metrics_of(expected_confusion(calibrated, predicted[known]))
    return {"estimated_rows": int(known.sum()), **result}


def holdout_calibrator(spec: DatasetSpec, model, features: pd.DataFrame) -> Calibrator:
    """The calibration of `model` on the test side of the feature set (`<ds>.features`)."""
    x_test, y_test = model_inputs(features, spec, "test")
    return calibrate(model.classes_, model.predict_proba(x_test), y_test)


def with_probabilities(served: pd.DataFrame) -> pd.DataFrame:
    """The logged predictions (`prediction`, `probabilities` as JSON text per row) that carry
    probabilities, these parsed into dicts."""
    parsed = served["probabilities"].map(lambda text: json.loads(text) if text else None)
    return served.assign(probabilities=parsed)[parsed.map(lambda p: isinstance(p, dict))]


def estimate_logged(calibrator: Calibrator, served: pd.DataFrame) -> dict[str, float]:
    """`estimate` on logged predictions; rows logged without probabilities are left out."""
    served = with_probabilities(served)
    matrix = probability_matrix(calibrator.classes, served["probabilities"])
    return estimate(calibrator, matrix, served["prediction"].astype(str))
