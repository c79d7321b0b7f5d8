"""Writers that batch on the request path and write from one daemon thread."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("serving.background")


class PeriodicFlush:
    """Calls `flush()` every `interval` seconds from a daemon thread, and once more on `close()`.

    A failing flush (say, a full disk) is logged and retried on the next tick; it never kills the
    thread.
    """

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flush(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:
                log.exception("%s: flush failed; retrying on the next tick", self._name)
