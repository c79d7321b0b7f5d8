"""Micro-batching: concurrent requests share model calls without changing any prediction."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from mlops_assets_tests.serving.conftest import iris_frame, publish
from mlops_assets_tests.serving.test_contract import abalone_rows, as_frame
from serving.batcher import MicroBatcher
from serving.model import LoadedModel, example_row
from serving.store import ModelStore


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


def served_model(models_dir, pipeline) -> LoadedModel:
    publish(models_dir, "abalone", pipeline, "1")
    store = ModelStore(models_dir)
    store.refresh()
    return store.slot("abalone").model


def test_a_batch_goes_as_soon_as_it_is_as_large_as_the_last_one(tmp_path, abalone_model):
    """Clients on a fixed number of connections send their next round right after an answer: a
    round as large as the last batch goes at once instead of waiting out the batch window."""
    model = served_model(tmp_path, abalone_model)
    row = example_row(model.fields)
    sizes = []

    async def rounds() -> tuple[float, float]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(pool, 5.0, 256, lambda model, rows, seconds: sizes.append(rows))

            async def one(delay: float = 0.0):
                await asyncio.sleep(delay)
                return await batcher.predict(model, [row])

            await asyncio.gather(*(one() for _ in range(4)))
            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(4)))
            second = time.perf_counter() - started
            started = time.perf_counter()  # two now, two 50 ms later: one batch of four
            await asyncio.gather(one(), one(), one(0.05), one(0.05))
            return second, time.perf_counter() - started

    second, third = asyncio.run(rounds())
    assert sizes == [4, 4, 4]
    assert second < 1.0 and third < 1.0  # neither waited out the 5 s window
    assert third >= 0.05  # the partial round waited for the rest
