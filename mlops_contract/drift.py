"""`<dataset>/drift.json`: the latest drift evaluation the pipeline publishes beside the models
and the prediction servers export as gauges."""

from __future__ import annotations

from typing import Any

DRIFT_FORMAT = 1


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
