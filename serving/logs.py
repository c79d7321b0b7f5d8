"""Structured logs: one JSON object per line on stdout."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from datetime import UTC, datetime

import msgspec

from serving.background import PeriodicFlush

ACCESS_LOGGER = "serving.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines for the `serving` loggers; idempotent, leaves the root logger alone."""
    logger = logging.getLogger("serving")
    if any(getattr(handler, "_serving_json", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._serving_json = True
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class AccessLog(PeriodicFlush):
    """The per-request log line, formatted and written by a background thread in batches.

    Same JSON shape as the `serving` loggers; writing line by line from the event loop (a
    syscall each with unbuffered stdout) cost more than the rest of a request's bookkeeping."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(interval, "access-log")
        self.enabled = logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
        # the stream of the moment, as the `serving` loggers' handler keeps it: a flush from this
        # thread must not follow a later swap of sys.stdout (pytest's capture, between tests)
        self.stream = sys.stdout
        self._pending: deque[tuple[float, dict]] = deque()

    def log(self, fields: dict) -> None:
        if self.enabled:
            self._pending.append((time.time(), fields))  # deque.append is thread-safe

    def flush(self) -> None:
        lines = []
        while self._pending:
            created, fields = self._pending.popleft()
            entry = {
                "timestamp": datetime.fromtimestamp(created, UTC).isoformat(),
                "level": "info",
                "logger": ACCESS_LOGGER,
                **fields,
            }
            lines.append(msgspec.json.encode(entry))
        if lines:
            self.stream.write(b"\n".join(lines).decode() + "\n")
            self.stream.flush()
