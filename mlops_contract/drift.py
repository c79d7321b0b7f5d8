"""The documents the pipeline publishes beside the models and the prediction servers export as
gauges: `<dataset>/drift.json` (the latest drift evaluation) and `<dataset>/live.json` (the
latest live performance of the served version on labelled requests)."""

from __future__ import annotations

from typing import Any

DRIFT_FORMAT = 1
LIVE_FORMAT = 1


def drift_document(
    model: str,
    version: str,
    evaluated_at: str,
    dataset_drift: bool,
    features: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """features maps a name to {"p_value", "psi", "drifted"}."""
    return {
        "format": DRIFT_FORMAT,
        "model": model,
        "version": str(version),
        "evaluated_at": evaluated_at,
        "dataset_drift": bool(dataset_drift),
        "features": {
            name: {
                "p_value": float(values["p_value"]),
                "psi": float(values["psi"]),
                "drifted": bool(values["drifted"]),
            }
            for name, values in features.items()
        },
    }


def live_document(
    model: str,
    version: str,
    day: str,
    counts: tuple[int, int],
    metrics: dict[str, float],
    within_holdout: bool,
    estimated: dict[str, float] | None = None,
) -> dict[str, Any]:
    """counts: (served, labelled) requests of the day; metrics maps a metric name to its value
    on the `labelled` ones (empty without labels); estimated (classifiers) maps a metric to
    its estimate from calibrated probabilities over all served ones; `within_holdout` is the
    live_within_holdout check's verdict."""
    served, labelled = counts
    return {
        "format": LIVE_FORMAT,
        "model": model,
        "version": str(version),
        "day": day,
        "served": int(served),
        "labelled": int(labelled),
        "coverage": labelled / served if served else None,
        "metrics": {name: float(value) for name, value in metrics.items()},
        "estimated": {name: float(value) for name, value in (estimated or {}).items()},
        "within_holdout": bool(within_holdout),
    }
