"""Structured logs: one JSON object per line on stdout."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import msgspec

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
