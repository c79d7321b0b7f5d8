"""Micro-batching: concurrent requests share model calls without changing any prediction."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np

from mlops_assets_tests.serving.conftest import iris_frame
from mlops_assets_tests.serving.test_contract import abalone_rows, as_frame


def test_concurrent_requests_are_batched_and_exact(live, abalone_model, iris_model):
    records = abalone_rows(200)
    expected = abalone_model.predict(as_frame(records)).tolist()
    iris_features, _ = iris_frame()
    iris_records = iris_features.to_dict(orient="records")
    iris_expected = iris_model.predict(iris_features).tolist()
    iris_proba = iris_model.predict_proba(iris_features)

    async def fire():
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=30) as http:
            abalone = [http.post("/models/abalone/predict", json=r) for r in records]
            pairs = [iris_records[i : i + 2] for i in range(0, len(iris_records), 2)]
            iris = [http.post("/models/iris/predict", json=pair) for pair in pairs]
            return await asyncio.gather(*abalone), await asyncio.gather(*iris)

    abalone_responses, iris_responses = asyncio.run(fire())
    assert [r.json()["prediction"] for r in abalone_responses] == expected
    iris_got = [value for r in iris_responses for value in r.json()["predictions"]]
    assert iris_got == iris_expected
    probabilities = [row for r in iris_responses for row in r.json()["probabilities"]]
    assert np.array_equal(np.array([list(row.values()) for row in probabilities]), iris_proba)

    metrics = httpx.get(live.url + "/metrics").text
    calls = float(
        re.search(r'mlops_inference_batch_rows_count\{model="abalone"\} (\S+)', metrics)[1]
    )
    rows = float(re.search(r'mlops_inference_batch_rows_sum\{model="abalone"\} (\S+)', metrics)[1])
    assert rows / calls > 1.5  # concurrent requests really shared model calls
