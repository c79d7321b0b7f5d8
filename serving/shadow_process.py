"""The challenger's scoring in a process of its own, at a lower CPU priority: its model work and
its log lines no longer take the serving process's GIL, and when the CPU is short the kernel
gives it what the server leaves over.

The server's shadow thread sends each round's batch (the challenger's bundle, the rows, and per
request its id, timestamp and records) through a pipe; the process loads the bundle itself
(verified, cached by bundle id), scores, appends the lines to the shadow log and answers with
the rows it scored per version, for the metrics. It exits when the server closes the pipe or
dies. Started on the first batch, so a server without a challenger runs no second process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_contract.bundle import BundleError, load_bundle, pointer_for
from serving.model import LoadedModel, from_bundle
from serving.prediction_log import JsonLinesLog, Served

log = logging.getLogger("serving.shadow")
NICENESS = 10  # added to the server's: the answer comes first
CLOSE_SECONDS = 30.0  # what the process gets to score what was sent before the server stops


@dataclass(frozen=True)
class Batch:
    """One challenger's rows of a round, and the requests they came from, in order."""

    dataset_dir: str
    bundle_id: str
    rows: list[list]
    requests: list[tuple[str, str, list[dict], int]]  # request id, timestamp, records, rows


class ShadowProcess:
    """The server's side: sends batches, collects what was scored."""

    def __init__(self, shadow_dir: Path, log_queue_size: int) -> None:
        self.shadow_dir = Path(shadow_dir)
        self.log_queue_size = log_queue_size
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._pipe = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def send(self, batch: Batch) -> bool:
        """Hand a batch over (starting the process first if it is not running); False when it
        could not be handed over (the process died meanwhile: the next batch starts another)."""
        if not self.alive:
            self._start()
        try:
            self._pipe.send(batch)
        except (OSError, ValueError) as exc:
            log.error("shadow process unreachable, batch not scored: %s", exc)
            self._process = None
            return False
        return True

    def scored(self) -> list[tuple[str, str, int]]:
        """(model, version, rows) scored since the last call."""
        counts = []
        try:
            while self._pipe is not None and self._pipe.poll():
                counts.extend(self._pipe.recv())
        except (EOFError, OSError):
            self._process = None
        return counts

    def close(self) -> list[tuple[str, str, int]]:
        """Let the process score what it was sent, then stop it; what it scored meanwhile."""
        if self._process is None:
            return []
        counts = []
        try:
            self._pipe.send(None)
            deadline = time.monotonic() + CLOSE_SECONDS
            while self._pipe.poll(max(0.0, deadline - time.monotonic())):
                message = self._pipe.recv()
                if message is None:
                    break
                counts.extend(message)
        except (EOFError, OSError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
        self._process = None
        return counts

    def _start(self) -> None:
        server_end, process_end = self._context.Pipe()
        self._process = self._context.Process(
            target=run,
            args=(process_end, str(self.shadow_dir), self.log_queue_size),
            name="mlops-shadow",
            daemon=True,
        )
        self._process.start()
        process_end.close()
        self._pipe = server_end
        log.info("shadow process %s started", self._process.pid)


def run(pipe, shadow_dir: str, log_queue_size: int) -> None:
    """The process: score each batch received until the pipe says stop or closes."""
    os.nice(NICENESS)
    shadow_log = JsonLinesLog(Path(shadow_dir), log_queue_size)
    models: dict[str, LoadedModel] = {}
    while True:
        try:
            batch = pipe.recv()
        except (EOFError, OSError):  # the server is gone
            break
        if batch is None:
            break
        counts = score(batch, models, shadow_log)
        shadow_log.flush()
        pipe.send(counts)
    shadow_log.flush()
    with contextlib.suppress(OSError):
        pipe.send(None)


def score(batch: Batch, models: dict[str, LoadedModel], shadow_log: JsonLinesLog) -> list:
    challenger = challenger_of(batch, models)
    if challenger is None:
        return []
    started = time.perf_counter()
    try:
        prediction = challenger.predict(batch.rows)
    except Exception:
        log.exception("challenger %s v%s failed to score", challenger.name, challenger.version)
        return []
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    start = 0
    probabilities = prediction.probabilities
    for request_id, timestamp, records, count in batch.requests:
        end = start + count
        shadow_log.append(
            Served(
                challenger.dataset, challenger.name, challenger.version, request_id, timestamp,
                records, prediction.values[start:end],
                None if probabilities is None else probabilities[start:end], latency_ms,
            )
        )  # fmt: skip
        start = end
    return [(challenger.name, challenger.version, len(batch.rows))]


def challenger_of(batch: Batch, models: dict[str, LoadedModel]) -> LoadedModel | None:
    """The batch's challenger, loaded and verified once per bundle; the latest of a data set."""
    if batch.bundle_id in models:
        return models[batch.bundle_id]
    dataset_dir = Path(batch.dataset_dir)
    try:
        pointer = pointer_for(dataset_dir, batch.bundle_id)
        loaded = from_bundle(dataset_dir.name, load_bundle(dataset_dir, pointer))
    except (BundleError, OSError) as exc:
        log.error("challenger bundle %s not shadowed: %s", batch.bundle_id, exc)
        return None
    for bundle_id in [b for b, m in models.items() if m.dataset == loaded.dataset]:
        del models[bundle_id]
    models[batch.bundle_id] = loaded
    return loaded
