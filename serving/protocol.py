"""The HTTP/1.1 protocol `mlops serve` runs: uvicorn's httptools implementation (the fast C
parser), with the request line and headers bounded (plain httptools has no such limit).

A request rejected here never reaches the app, so it is answered, logged and counted here:
431 for a request line and headers over the limit, 400 for a malformed request line or header
bytes, 408 for a head not complete within MLOPS_HEAD_TIMEOUT_S (an idle new connection
included) or a body not complete within MLOPS_BODY_TIMEOUT_S, JSON bodies like the app's own
errors. Slow clients would otherwise hold their connections, and the server's file descriptors,
forever.

A client that half-closes (shuts its sending side after the request, as `curl -N` style tools
and some proxies do) still gets its answers: the connection is closed only once every complete
request read before the end of input has been answered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from serving.metrics import record_rejected_before_app

log = logging.getLogger("serving.http")
DEFAULT_MAX_HEADER_BYTES = 16 * 1024

REQUEST_LINE_OVERHEAD = len("  HTTP/1.1\r\n")  # besides the method and the target
HEADER_LINE_OVERHEAD = len(": \r\n")  # besides the name and the value


@functools.cache  # read once per process, not on every new connection
def max_header_bytes() -> int:
    """The limit on request line + headers: MLOPS_MAX_HEADER_BYTES, default 16 KiB."""
    raw = os.environ.get("MLOPS_MAX_HEADER_BYTES")
    if not raw:
        return DEFAULT_MAX_HEADER_BYTES
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError(f"MLOPS_MAX_HEADER_BYTES must be a positive integer, got {raw!r}")
    return int(raw)


@functools.cache
def read_timeouts() -> tuple[float, float]:
    """Seconds from a connection (or a request's first byte) to its head's end, MLOPS_HEAD_TIMEOUT_S
    (default 10), and from there to the body's end, MLOPS_BODY_TIMEOUT_S (default 30)."""
    return _seconds("MLOPS_HEAD_TIMEOUT_S", 10.0), _seconds("MLOPS_BODY_TIMEOUT_S", 30.0)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


class HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose head is over the limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Two measures of the request head, so the limit holds however the bytes arrive:

    - while a head is still arriving, the bytes read since the previous message ended: once
      they pass the limit without the head being complete, the connection is answered 431 and
      closed, so a 200 MB header costs one read past the limit, not 200 MB of memory;
    - when a head is complete (it may have come whole in one read, after another message), its
      exact size from the parsed request line and headers.
    """

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes = max_header_bytes()
        self.reading_head = True
        self.head_bytes_read = 0  # of the head being read; never more than its real size
        self.error_status = 400
        self.rejection: bytes | None = None  # the error response, once a request is rejected
        self.read_timer: asyncio.TimerHandle | None = None
        self.head_timeout, self.body_timeout = read_timeouts()
        self.input_ended = False  # the client half-closed; close once its answers are sent

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_read_timer(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.arm_read_timer(None)
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        # asyncio closes the transport when this returns False, dropping answers still owed
        if self.owes_complete_requests():
            self.input_ended = True
            return True
        return False

    def owes_complete_requests(self) -> bool:
        cycle = self.cycle
        in_flight = cycle is not None and not cycle.more_body and not cycle.response_complete
        return in_flight or bool(self.pipeline)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.read_timer is None:  # a kept-alive connection's next request
            self.arm_read_timer(self.head_timeout)

    def arm_read_timer(self, seconds: float | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
        self.read_timer = None if seconds is None else self.loop.call_later(seconds, self.timed_out)

    def timed_out(self) -> None:
        self.read_timer = None
        if self.transport.is_closing() or self.rejection is not None:
            return
        if self.reading_head and self.responses_owed():
            return  # the app still works on an earlier request; keep-alive takes over after it
        self.error_status = 408
        if self.reading_head:
            self.send_400_response("request head timed out")
            return
        # the app waits for this body: answer 408 unless it already started a response
        if self.cycle is not None and not self.cycle.response_started:
            self.rejection = self.reject(
                408, f"request body not received within {self.body_timeout} s"
            )
            self.send_rejection()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.rejection is not None:
            return  # the connection ends with the rejection; nothing after it is read
        if self.reading_head:
            self.head_bytes_read += len(data)
        super().data_received(data)
        # checked after feeding: a small head and a large body can arrive in one read
        if (
            self.reading_head
            and self.head_bytes_read > self.max_header_bytes
            and self.rejection is None
        ):
            self.error_status = 431
            self.send_400_response("headers too large")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.arm_read_timer(self.body_timeout)
        if self.head_size() > self.max_header_bytes:
            self.error_status = 431
            raise HeadersTooLarge  # httptools turns it into a parser error: send_400_response
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.arm_read_timer(None)
        self.reading_head = True
        self.head_bytes_read = 0
        super().on_message_complete()

    def head_size(self) -> int:
        size = len(self.parser.get_method()) + len(self.url) + REQUEST_LINE_OVERHEAD
        for name, value in self.headers:
            size += len(name) + len(value) + HEADER_LINE_OVERHEAD
        return size

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for every parser error, before any app code runs
        self.arm_read_timer(None)
        status = self.error_status
        if status == 431:
            detail = (
                f"request line and headers larger than {self.max_header_bytes} bytes "
                "(MLOPS_MAX_HEADER_BYTES)"
            )
        elif status == 408:
            detail = f"request line and headers not received within {self.head_timeout} s"
        else:
            detail = "malformed HTTP request (request line or header bytes)"
        self.rejection = self.reject(status, detail)
        if self.responses_owed():
            # pipelined requests before this one are answered first, in order
            self.flow.pause_reading()
        else:
            self.send_rejection()

    def reject(self, status: int, detail: str) -> bytes:
        """The rejection's response, logged and counted."""
        record_rejected_before_app(status)
        client = self.transport.get_extra_info("peername")
        log.warning(
            detail,
            extra={"fields": {"status": status, "detail": detail, "client": str(client)}},
        )
        return error_response(status, detail, self.server_state.default_headers)

    def responses_owed(self) -> bool:
        """Whether a request parsed before the rejected one still awaits its response."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.rejection is not None and not self.responses_owed():
            self.send_rejection()
        elif self.input_ended and not self.owes_complete_requests():
            self.transport.close()

    def send_rejection(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.rejection)
            self.transport.close()


def error_response(status: int, detail: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete `connection: close` response with a JSON body {"detail": ...}."""
    body = msgspec.json.encode({"detail": detail})
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    lines = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in headers)]
    return b"".join([*lines, b"\r\n", body])
