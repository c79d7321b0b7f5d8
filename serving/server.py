"""Start the prediction server (wired to `mlops serve`)."""

from __future__ import annotations

import os

from serving.protocol import DEFAULT_MAX_HEADER_BYTES

PROTOCOL = "serving.protocol:GuardedH11Protocol"


def log_config() -> dict:
    """uvicorn's own loggers (start-up, warnings, errors) as JSON lines on stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "serving.logs.JsonFormatter"}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {"uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False}},
    }


def max_header_bytes() -> int:
    raw = os.environ.get("MLOPS_MAX_HEADER_BYTES")
    return int(raw) if raw else DEFAULT_MAX_HEADER_BYTES


def run(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve `serving.app:app` with uvicorn; loopback by default, bind 0.0.0.0 deliberately."""
    import uvicorn

    uvicorn.run(
        "serving.app:app",
        host=host,
        port=port,
        workers=workers,
        http=PROTOCOL,  # h11 with a header limit; httptools has none
        h11_max_incomplete_event_size=max_header_bytes(),
        access_log=False,  # the app writes its own structured access log
        log_config=log_config(),
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
