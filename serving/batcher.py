"""Micro-batching: concurrent requests for one data set share a single model call.

A pipeline call costs about the same for 1 row as for 100, so a batch waits up to `wait_s` for
company, but goes as soon as it has as many rows as the previous batch had (at least 2):
clients that each wait for their answer before sending again (a fixed number of connections)
send the next round right after a batch is answered, and that round is complete once it is as
large as the last one. Requests that pile up while the previous call runs go out together
without waiting. Each job keeps the model object it started with, and a batch only groups jobs
of the same model, so a hot swap never changes a request's model.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from serving.model import LoadedModel, Prediction


@dataclass
class Job:
    model: LoadedModel
    rows: list[list]
    future: asyncio.Future


def _take_batch(pending: deque[Job], max_rows: int) -> list[Job]:
    """Leading jobs of one model, at most max_rows rows (but always the first job whole)."""
    first = pending.popleft()
    batch, rows = [first], len(first.rows)
    while pending and pending[0].model is first.model and rows + len(pending[0].rows) <= max_rows:
        job = pending.popleft()
        batch.append(job)
        rows += len(job.rows)
    return batch


def _split(prediction: Prediction, sizes: list[int]) -> list[Prediction]:
    parts, start = [], 0
    for size in sizes:
        end = start + size
        probabilities = prediction.probabilities
        parts.append(
            Prediction(
                prediction.values[start:end],
                probabilities[start:end] if probabilities is not None else None,
                frozenset(i - start for i in prediction.unscorable if start <= i < end),
            )
        )
        start = end
    return parts


class MicroBatcher:
    def __init__(
        self,
        executor: Executor,
        wait_s: float,
        max_rows: int,
        on_batch: Callable[[LoadedModel, int, float], None] = lambda model, rows, seconds: None,
    ) -> None:
        self.executor = executor
        self.wait_s = wait_s
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._pending: deque[Job] = deque()
        self._pending_rows = 0
        self._worker: asyncio.Task | None = None
        self._last_batch_rows = 2  # the size a waiting batch goes at, before wait_s is over
        self._full: asyncio.Event | None = None  # set while a batch waits, once it has them

    async def predict(self, model: LoadedModel, rows: list[list]) -> Prediction:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(Job(model, rows, future))
        self._pending_rows += len(rows)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        elif self._full is not None and self._pending_rows >= self._last_batch_rows:
            self._full.set()
        return await future

    async def _wait_for_company(self) -> None:
        """Until the pending rows reach the previous batch's size or max_rows, at most wait_s."""
        if self._pending_rows >= min(self._last_batch_rows, self.max_rows):
            return
        self._full = asyncio.Event()
        try:
            await asyncio.wait_for(self._full.wait(), self.wait_s)
        except TimeoutError:
            pass
        finally:
            self._full = None

    async def _drain(self) -> None:
        try:
            if self.wait_s > 0:
                await self._wait_for_company()
            while self._pending:
                batch = _take_batch(self._pending, self.max_rows)
                rows = sum(len(job.rows) for job in batch)
                self._pending_rows -= rows
                self._last_batch_rows = max(rows, 2)
                await self._run(batch)
        except BaseException as exc:  # e.g. cancelled at shutdown: no request may wait forever
            while self._pending:
                _settle(self._pending.popleft().future, exception=RuntimeError(repr(exc)))
            self._pending_rows = 0
            raise

    async def _run(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        model = batch[0].model
        rows = [row for job in batch for row in job.rows]
        started = time.perf_counter()
        try:
            prediction = await loop.run_in_executor(self.executor, model.predict, rows)
        except Exception as exc:
            if len(batch) > 1:  # isolate the job that broke the call; the others still get answers
                for job in batch:
                    await self._run([job])
                return
            _settle(batch[0].future, exception=exc)
            return
        self.on_batch(model, len(rows), time.perf_counter() - started)
        for job, part in zip(
            batch, _split(prediction, [len(job.rows) for job in batch]), strict=True
        ):
            _settle(job.future, result=part)


def _settle(future: asyncio.Future, result=None, exception: BaseException | None = None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
