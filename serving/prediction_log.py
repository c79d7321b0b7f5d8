"""Every served prediction, appended off the request path to JSON Lines files.

    <predictions_dir>/<dataset>/<YYYY-MM-DD>.jsonl   (UTC date of the prediction)

Requests only put a batch on a bounded queue (a deque: appending and popping are atomic, with no
lock to take per request); a daemon thread drains it about once a second and
appends each file's new lines with one write and a flush, so a crash loses at most what was
still buffered and never tears an earlier line. A torn last line is skipped by `read_records`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from serving.background import PeriodicFlush


@dataclass(frozen=True)
class Served:
    """One request's predictions; inputs, predictions and probabilities line up row by row.

    Per-row output dicts are built by the log thread, not by the request.
    """

    dataset: str
    model: str
    version: str
    request_id: str
    timestamp: str
    inputs: list[dict]
    predictions: list
    probabilities: list[dict] | None
    latency_ms: float

    def outputs(self) -> list[dict]:
        if self.probabilities is None:
            return [{"prediction": value} for value in self.predictions]
        return [
            {"prediction": value, "probabilities": probabilities}
            for value, probabilities in zip(self.predictions, self.probabilities, strict=True)
        ]


def lines_of(served: Served) -> bytes:
    encode = msgspec.json.encode
    return b"".join(
        encode(
            {
                "request_id": served.request_id,
                "timestamp": served.timestamp,
                "model": served.model,
                "version": served.version,
                "input": record,
                "output": output,
                "latency_ms": served.latency_ms,
            }
        )
        + b"\n"
        for record, output in zip(served.inputs, served.outputs(), strict=True)
    )


class PredictionLog(PeriodicFlush):
    def __init__(
        self,
        directory: Path,
        max_queued: int = 100_000,
        flush_interval: float = 1.0,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(flush_interval, "prediction-log")
        self.directory = Path(directory)
        self.max_queued = max_queued
        self._queue: deque[Served] = deque()
        self._on_drop = on_drop
        self._lock = threading.Lock()

    def append(self, served: Served) -> None:
        if len(self._queue) >= self.max_queued:
            self._on_drop()
            return
        self._queue.append(served)

    def flush(self) -> None:
        with self._lock:
            batches: dict[Path, list[bytes]] = defaultdict(list)
            while True:
                try:
                    served = self._queue.popleft()
                except IndexError:
                    break
                day = served.timestamp[:10]
                batches[self.directory / served.dataset / f"{day}.jsonl"].append(lines_of(served))
            for path, chunks in batches.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                # a line torn by an earlier crash must not swallow the first new one
                prefix = b"\n" if _ends_torn(path) else b""
                with path.open("ab") as handle:
                    handle.write(prefix + b"".join(chunks))
                    handle.flush()


def _ends_torn(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-1, 2)
            return handle.read(1) != b"\n"
    except OSError:  # missing or empty file
        return False


@dataclass
class ReadResult:
    records: list[dict[str, Any]]
    skipped: int


def read_records(path: Path) -> ReadResult:
    """Records of one log file; lines that do not parse (a torn tail) are skipped and counted."""
    records, skipped = [], 0
    with Path(path).open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                skipped += 1
    return ReadResult(records, skipped)
