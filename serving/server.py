"""Start the prediction server (wired to `mlops serve`)."""

from __future__ import annotations


def run(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve `serving.app:app` with uvicorn; loopback by default, bind 0.0.0.0 deliberately."""
    import uvicorn

    uvicorn.run(
        "serving.app:app",
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the app writes its own structured access log
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
