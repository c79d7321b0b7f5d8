"""Identical predictions: the check records scored by ours, mlflow serve and the FastAPI peer must
agree (np.allclose, rtol 1e-9, atol 0)."""

from __future__ import annotations

import httpx
import numpy as np

from bench.serving.bodies import Records, mlflow_body
from bench.serving.servers import Running, ServerError, route_url
from bench.serving.subjects import Subject


def predictions_of(subject: Subject, running: dict[str, Running], records: Records) -> list | None:
    """The subject's answers for the check records (None for the ceiling, which has no model)."""
    url = route_url(running, subject.routes["single"])
    with httpx.Client(timeout=60) as client:
        if subject.key == "ours":
            return post_json(client, url, records.rows)["predictions"]
        if subject.key == "mlflow":
            return post_json(client, url, mlflow_body(records.as_columns()))["predictions"]
        if subject.key == "fastapi":
            return [post_json(client, url, row)["prediction"] for row in records.rows]
    return None


def post_json(client: httpx.Client, url: str, body: object) -> dict:
    response = client.post(url, json=body)
    if response.status_code != 200:
        raise ServerError(f"POST {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def compare_predictions(answers: dict[str, list]) -> dict:
    """Every subject against ours: np.allclose with rtol 1e-9 (and atol 0)."""
    reference = np.asarray(answers.get("ours", []), dtype=float)
    pairs = {}
    for key, values in answers.items():
        if key == "ours":
            continue
        other = np.asarray(values, dtype=float)
        same = other.shape == reference.shape and np.allclose(reference, other, rtol=1e-9, atol=0)
        gap = float(np.max(np.abs(reference - other))) if other.shape == reference.shape else None
        pairs[key] = {"equal": bool(same), "max_abs_difference": gap}
    count = len(reference)
    return {
        "records": count,
        "rtol": 1e-9,
        "pairs": pairs,
        "all_equal": bool(pairs) and all(pair["equal"] for pair in pairs.values()),
    }


def verdict(equal: bool) -> str:
    return "equal" if equal else "DIFFERENT"
