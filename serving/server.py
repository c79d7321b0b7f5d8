"""Start the prediction server (wired to `mlops serve`)."""

from __future__ import annotations

from serving.protocol import max_header_bytes

PROTOCOL = "serving.protocol:GuardedHttpToolsProtocol"


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


def run(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve `serving.app:app` with uvicorn; loopback by default, bind 0.0.0.0 deliberately."""
    import uvicorn

    max_header_bytes()  # a bad MLOPS_MAX_HEADER_BYTES fails here, not on every connection
    uvicorn.run(
        "serving.app:app",
        host=host,
        port=port,
        workers=workers,
        http=PROTOCOL,  # httptools with a header limit; plain httptools has none
        access_log=False,  # the app writes its own structured access log
        log_config=log_config(),
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
