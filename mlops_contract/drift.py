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
    labelled: int,
    metrics: dict[str, float],
    within_holdout: bool,
) -> dict[str, Any]:
    """metrics maps a metric name to its value on the day's `labelled` requests;
    `within_holdout` is the live_within_holdout check's verdict."""
    return {
        "format": LIVE_FORMAT,
        "model": model,
        "version": str(version),
        "day": day,
        "labelled": int(labelled),
        "metrics": {name: float(value) for name, value in metrics.items()},
        "within_holdout": bool(within_holdout),
    }
