"""Start the prediction server: `mlops serve`, `mlops-serve` or `python -m serving`."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator

from serving.internals import check_internals
from serving.protocol import max_header_bytes, read_timeouts

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


@contextlib.contextmanager
def shared_metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a PROMETHEUS_MULTIPROC_DIR of this server's own for the workers to
    count into (serving.metrics), removed when the server stops; one worker needs none."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="mlops-serve-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(folder, ignore_errors=True)


def max_connections() -> int:
    """MLOPS_MAX_CONNECTIONS, default what the open-files limit leaves after 10% (at least 64)
    for bundles, logs and the model threads: a flood of idle clients gets 503s, while probes,
    reloads and the log still find a free descriptor."""
    raw = os.environ.get("MLOPS_MAX_CONNECTIONS")
    if raw:
        if not raw.strip().isdigit() or int(raw) <= 0:
            raise ValueError(f"MLOPS_MAX_CONNECTIONS must be a positive integer, got {raw!r}")
        return int(raw)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft - max(64, soft // 10))


def run(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve `serving.app:app` with uvicorn; loopback by default, bind 0.0.0.0 deliberately."""
    import uvicorn

    check_internals()  # an untested uvicorn, httptools, scikit-learn or Litestar fails here
    max_header_bytes()  # a bad MLOPS_MAX_HEADER_BYTES fails here, not on every connection
    read_timeouts()  # and so do bad MLOPS_HEAD_TIMEOUT_S / MLOPS_BODY_TIMEOUT_S
    with shared_metrics_dir(workers):
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
            # beyond this many connections and requests at once: 503, not EMFILE for everyone
            limit_concurrency=max_connections(),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mlops-serve", description="Serve the champion of every data set over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    run(host=args.host, port=args.port, workers=args.workers)
