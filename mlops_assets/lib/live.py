"""Live performance: a model version's metrics on labelled live predictions, with bootstrap
intervals, computed like the holdout's (metric_arrays), so the two can be compared."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mlops_assets.lib import metric_arrays
from mlops_assets.lib.evaluation import RESAMPLES, SEED, percentile_interval
from mlops_assets.lib.spec import METRICS, DatasetSpec


def scored(task: str, frame: pd.DataFrame) -> metric_arrays.Scored:
    """`frame` has `actual`, `prediction` and, for classifiers, `probabilities` (JSON)."""
    if task == "regression":
        return metric_arrays.Scored(
            task, frame["actual"].to_numpy(float), frame["prediction"].to_numpy(float)
        )
    classes = sorted(set(frame["actual"].astype(str)) | set(frame["prediction"].astype(str)))
    codes = {label: index for index, label in enumerate(classes)}
    truth = frame["actual"].astype(str).map(codes).to_numpy()
    guessed = frame["prediction"].astype(str).map(codes).to_numpy()
    return metric_arrays.Scored(task, truth, guessed, _row_log_loss(frame), len(classes))


def _row_log_loss(frame: pd.DataFrame) -> np.ndarray | None:
    if "probabilities" not in frame or frame["probabilities"].isna().any():
        return None
    eps = np.finfo(float).eps
    chosen = [
        json.loads(probabilities).get(str(actual), 0.0)
        for probabilities, actual in zip(frame["probabilities"], frame["actual"], strict=True)
    ]
    return -np.log(np.clip(np.asarray(chosen, dtype=float), eps, 1 - eps))


def performance(spec: DatasetSpec, frame: pd.DataFrame) -> dict:
    """The spec's metrics on `frame` (labelled predictions of one version); the selection
    metric with a percentile bootstrap interval."""
    one = scored(spec.task, frame)
    everything = np.arange(len(frame))[None, :]
    result: dict = {"labelled": len(frame)}
    for metric in METRICS[spec.task]:
        if metric == "log_loss" and one.row_log_loss is None:
            continue
        result[metric] = float(metric_arrays.values(metric, one, everything)[0])
    metric = spec.selection_metric
    samples = metric_arrays.bootstrap(metric, {"live": one}, RESAMPLES, SEED)["live"]
    interval = percentile_interval(samples, result[metric])
    result.update({f"{metric}_low": interval["low"], f"{metric}_high": interval["high"]})
    return result


def verdict(spec: DatasetSpec, live: dict | None, holdout: dict | None) -> tuple[bool, str]:
    """(passed, why): live performance is an error only when it is enough labels and worse
    than the low end of the holdout interval (for the metric's direction)."""
    metric, minimum = spec.selection_metric, spec.gates.live_min_labels
    if not live or live["labelled"] < minimum:
        rows = live["labelled"] if live else 0
        return True, f"too few labels to judge ({rows} < {minimum} labelled predictions)"
    if holdout is None:
        return True, "no holdout interval to compare with (the bundle has no model card)"
    estimate = live[metric]
    worse = estimate < holdout["low"] if spec.higher_is_better else estimate > holdout["high"]
    edge = holdout["low"] if spec.higher_is_better else holdout["high"]
    relation = "outside" if worse else "within or better than"
    return not worse, (
        f"live {metric} {estimate:.4f} on {live['labelled']} labels is {relation} the holdout "
        f"interval [{holdout['low']:.4f}, {holdout['high']:.4f}] (edge {edge:.4f})"
    )
