"""How sure, what drives it, where it is weak: a candidate's holdout evaluation beyond one number.

- bootstrap intervals (seeded, paired) of the selection metric, the dummy baseline's and the
  improvement over it;
- permutation importance per input column (the raw column is permuted before the Pipeline's
  encoding, so a one-hot encoded category gets one value), in API field names;
- the metric per slice: per category of each categorical feature, per quartile bin (edges from
  the training rows) of each numeric one, with row counts; and the optional slice gate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from mlops_assets.lib import metric_arrays
from mlops_assets.lib.spec import Column, DatasetSpec

SEED = 0
RESAMPLES = 1_000
CONFIDENCE = 0.95
IMPORTANCE_REPEATS = 5
IMPORTANCE_ROWS = 5_000
QUANTILES = (0.25, 0.5, 0.75)
MIN_SLICE_ROWS = 30  # smaller slices are listed but neither gated nor named worst: too noisy
WORST_SHOWN = 3
MISSING = "(missing)"


@dataclass(frozen=True)
class SliceGate:
    passed: bool
    reason: str


@dataclass(frozen=True)
class Evaluation:
    metric: str  # `test_<selection metric>`
    holdout_rows: int
    intervals: dict[str, dict[str, float]]
    importance: list[dict[str, Any]]
    slices: list[dict[str, Any]]
    slice_gate: SliceGate | None

    @property
    def worst_slices(self) -> list[dict[str, Any]]:
        gated = [s for s in self.slices if s["rows"] >= MIN_SLICE_ROWS and np.isfinite(s["gap"])]
        return sorted(gated, key=lambda s: -s["gap"])[:WORST_SHOWN]

    def gated(self, decision):
        """`decision` (a promotion Decision), blocked from promotion when the slice gate fails."""
        if self.slice_gate is None or self.slice_gate.passed or not decision.promote:
            return decision
        return dataclasses.replace(decision, promote=False, reason=self.slice_gate.reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "holdout_rows": self.holdout_rows,
            "intervals": self.intervals,
            "bootstrap": {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": SEED},
            "importance": self.importance,
            "slices": self.slices,
            "worst_slices": self.worst_slices,
            "slice_gate": dataclasses.asdict(self.slice_gate) if self.slice_gate else None,
        }


def evaluate(spec: DatasetSpec, model, reference, x_train, y_train, x_test, y_test) -> Evaluation:
    """The whole evaluation of `model` on the holdout (x_test, y_test), beside the baseline
    `reference` (`training.baseline`) the promotion gate holds it to."""
    metric = spec.selection_metric
    scored = metric_arrays.score(spec.task, model, x_test, y_test)
    dummy = metric_arrays.score(spec.task, reference, x_test, y_test)
    overall = float(metric_arrays.values(metric, scored, np.arange(len(x_test))[None, :])[0])
    slices = slice_metrics(spec, scored, x_train, x_test, overall)
    return Evaluation(
        metric=f"test_{metric}",
        holdout_rows=len(x_test),
        intervals=intervals(spec, scored, dummy),
        importance=importance(spec, model, x_test, y_test),
        slices=slices,
        slice_gate=slice_gate(spec, slices, overall),
    )


def percentile_interval(samples: np.ndarray, estimate: float) -> dict[str, float]:
    """The estimate with the CONFIDENCE percentile interval of its bootstrap samples."""
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return {"estimate": estimate, "low": float(low), "high": float(high)}


def intervals(spec: DatasetSpec, scored, dummy) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals: the model's metric, the baseline's, and the model's
    improvement over the baseline (positive = better), all on the same resamples."""
    metric = spec.selection_metric
    model, baseline, improvement = paired_intervals(spec, scored, dummy)
    return {
        f"test_{metric}": model,
        f"baseline_test_{metric}": baseline,
        "improvement_over_baseline": improvement,
    }


def paired_intervals(spec: DatasetSpec, new, old) -> tuple[dict, dict, dict]:
    """(new's selection metric, old's, new's improvement over old: positive = better), each
    with its percentile bootstrap interval; both scored on the same rows and resamples."""
    metric = spec.selection_metric
    everything = np.arange(len(new.truth))[None, :]
    point = {
        name: float(metric_arrays.values(metric, one, everything)[0])
        for name, one in (("new", new), ("old", old))
    }
    samples = metric_arrays.bootstrap(metric, {"new": new, "old": old}, RESAMPLES, SEED)
    sign = 1.0 if spec.higher_is_better else -1.0
    return (
        percentile_interval(samples["new"], point["new"]),
        percentile_interval(samples["old"], point["old"]),
        percentile_interval(
            sign * (samples["new"] - samples["old"]), sign * (point["new"] - point["old"])
        ),
    )


def _scorer(spec: DatasetSpec):
    """The selection metric as a scorer (higher is better), computed like everywhere else."""
    sign = 1.0 if spec.higher_is_better else -1.0

    def scorer(model, x, y) -> float:
        scored = metric_arrays.score(spec.task, model, x, y)
        everything = np.arange(len(x))[None, :]
        return sign * float(metric_arrays.values(spec.selection_metric, scored, everything)[0])

    return scorer


def importance(spec: DatasetSpec, model, x_test: pd.DataFrame, y_test) -> list[dict[str, Any]]:
    """Permutation importance per input column (how much the metric worsens when the column is
    shuffled), largest first, on a seeded sample of at most IMPORTANCE_ROWS holdout rows."""
    if len(x_test) > IMPORTANCE_ROWS:
        chosen = np.random.default_rng(SEED).choice(len(x_test), IMPORTANCE_ROWS, replace=False)
        x_test, y_test = x_test.iloc[np.sort(chosen)], np.asarray(y_test)[np.sort(chosen)]
    result = permutation_importance(
        model,
        x_test,
        y_test,
        scoring=_scorer(spec),
        n_repeats=IMPORTANCE_REPEATS,
        random_state=SEED,
        n_jobs=1,
    )
    fields = {c.name: c.field for c in spec.feature_columns}
    rows = [
        {"field": fields[column], "mean": float(mean), "std": float(std)}
        for column, mean, std in zip(
            x_test.columns, result.importances_mean, result.importances_std, strict=True
        )
    ]
    return sorted(rows, key=lambda row: -row["mean"])


def _bin_labels(column: Column, train: pd.Series, test: pd.Series) -> pd.Series:
    """Each holdout value's slice: its category, or its bin between training-data quartiles."""
    if not column.is_numeric:
        return test.astype("object").where(test.notna(), MISSING).astype(str)
    edges = np.unique(np.nanquantile(train.astype(float), QUANTILES))
    values = test.astype(float).to_numpy()
    position = np.searchsorted(edges, values, side="left")  # bin i: edges[i-1] < v <= edges[i]
    bounds = [-np.inf, *edges, np.inf]
    labels = [_range_label(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    named = np.array(labels, dtype=object)[position]
    return pd.Series(np.where(np.isnan(values), MISSING, named), index=test.index)


def _range_label(low: float, high: float) -> str:
    if low == -np.inf:
        return f"<= {high:.4g}"
    return f"> {low:.4g}" if high == np.inf else f"({low:.4g}, {high:.4g}]"


def slice_metrics(spec: DatasetSpec, scored, x_train, x_test, overall: float) -> list[dict]:
    """The metric per slice of every feature; `gap` is how far it trails the overall metric
    (positive = worse, whichever direction the metric improves in)."""
    metric = spec.selection_metric
    sign = 1.0 if spec.higher_is_better else -1.0
    rows = []
    # a date's slices would be single days (or, for a time split, all after the training rows)
    for column in (c for c in spec.feature_columns if c.kind != "date"):
        labels = _bin_labels(column, x_train[column.name], x_test[column.name]).to_numpy()
        for label in pd.unique(labels):
            index = np.flatnonzero(labels == label)
            value = float(metric_arrays.values(metric, scored, index[None, :])[0])
            rows.append(
                {
                    "feature": column.field,
                    "column": column.name,
                    "slice": str(label),
                    "rows": len(index),
                    "value": value,
                    "gap": sign * (overall - value),
                }
            )
    return rows


def slice_gate(spec: DatasetSpec, slices: list[dict], overall: float) -> SliceGate | None:
    """None without `gates.max_slice_gap`; else failed when a large enough slice of a feature in
    `slices` trails the overall metric by more than the margin (the reason names the worst)."""
    margin = spec.gates.max_slice_gap
    if margin is None:
        return None
    checked = [
        s
        for s in slices
        if s["column"] in spec.slices and s["rows"] >= MIN_SLICE_ROWS and np.isfinite(s["gap"])
    ]
    failing = sorted((s for s in checked if s["gap"] > margin), key=lambda s: -s["gap"])
    metric = f"test_{spec.selection_metric}"
    if not failing:
        return SliceGate(True, f"every slice of {spec.slices} is within {margin} of {metric}")
    worst = failing[0]
    return SliceGate(
        False,
        f"slice gap: slice {worst['feature']} {_shown(worst['slice'])} ({worst['rows']} rows) has "
        f"{metric} {worst['value']:.4f}, trailing the overall {overall:.4f} by "
        f"{worst['gap']:.4f}, more than gates.max_slice_gap {margin}"
        + (f" ({len(failing) - 1} more slice(s) too)" if len(failing) > 1 else ""),
    )


def _shown(label: str) -> str:
    return label if label[:1] in "<>(" else f"= {label}"
