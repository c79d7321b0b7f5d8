"""Every served prediction (and every label sent back, serving.feedback), appended off the
request path to JSON Lines files.

    <predictions_dir>/<dataset>/<YYYY-MM-DD>.jsonl   (UTC date of the prediction)

Requests only put a batch on a bounded queue (a deque: appending and popping are atomic, with no
lock to take per request); a daemon thread drains it about once a second and
appends each file's new lines with one write, so a crash loses at most what was still queued
and never tears an earlier line. A torn last line is skipped by `read_records`. Lines the disk
refuses are held and written later (see `PredictionLog`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from serving.background import PeriodicFlush

log = logging.getLogger("serving.prediction_log")


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

    def lines(self) -> bytes:
        encode = msgspec.json.encode
        return b"".join(
            encode(
                {
                    "request_id": self.request_id,
                    "timestamp": self.timestamp,
                    "model": self.model,
                    "version": self.version,
                    "input": record,
                    "output": output,
                    "latency_ms": self.latency_ms,
                }
            )
            + b"\n"
            for record, output in zip(self.inputs, self.outputs(), strict=True)
        )


class Entry(Protocol):
    """What the log writes: a request's lines, filed under its data set and UTC day."""

    dataset: str
    timestamp: str

    def lines(self) -> bytes: ...


class JsonLinesLog(PeriodicFlush):
    """Lines that cannot be written (a full or read-only disk) stay held, in order, and go out on
    a later flush once the disk is writable again; `write_error` says why meanwhile. Queued plus
    held requests are bounded by `max_queued`: beyond it the newest are dropped and counted."""

    def __init__(
        self,
        directory: Path,
        max_queued: int = 100_000,
        flush_interval: float = 1.0,
        on_drop: Callable[[int], None] = lambda count: None,
    ) -> None:
        super().__init__(flush_interval, f"log-{Path(directory).name}")
        self.directory = Path(directory)
        self.max_queued = max_queued
        self._queue: deque[Entry] = deque()
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._held: dict[Path, list[bytes]] = {}  # one chunk per request, oldest first
        self._held_count = 0
        self.write_error: str | None = None

    @property
    def held(self) -> int:
        """Requests whose lines wait for a writable disk."""
        return self._held_count

    def append(self, entry: Entry) -> None:
        if len(self._queue) + self._held_count >= self.max_queued:
            self._on_drop(1)
            return
        self._queue.append(entry)

    def flush(self) -> None:
        with self._lock:
            batches: dict[Path, list[bytes]] = defaultdict(list, self._held)
            while True:
                try:
                    entry = self._queue.popleft()
                except IndexError:
                    break
                day = entry.timestamp[:10]
                batches[self.directory / entry.dataset / f"{day}.jsonl"].append(entry.lines())
            self._held, self.write_error = {}, None
            for path, chunks in batches.items():
                try:
                    append_lines(path, b"".join(chunks))
                except OSError as exc:
                    self._held[path] = chunks
                    self.write_error = f"{path}: {exc.strerror or exc}"
            self._held_count = sum(len(chunks) for chunks in self._held.values())
        if self.write_error:
            log.warning("%s not written (%d held): %s", self.directory, self.held, self.write_error)


def append_lines(path: Path, data: bytes, sync: bool = False) -> None:
    """Appends whole lines or nothing: a failed write is cut back to where it started, so a
    retry never leaves a torn or doubled line. A line torn by an earlier crash gets its newline
    first, so it cannot swallow the first new one. With `sync`, on disk before it returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(descriptor, 0, os.SEEK_END)
        pending = memoryview((b"\n" if _ends_torn(path) else b"") + data)
        try:
            while pending:
                pending = pending[os.write(descriptor, pending) :]
            if sync:
                os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, start)
            raise
    finally:
        os.close(descriptor)


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
