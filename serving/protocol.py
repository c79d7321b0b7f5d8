"""The HTTP/1.1 protocol `mlops serve` runs: uvicorn's h11 implementation, with the request
line and headers bounded (httptools, uvicorn's default when installed, has no such limit).

A request rejected here never reaches the app, so it is answered, logged and counted here:
431 for headers over the limit, 400 for a malformed request line or header bytes, JSON bodies
like the app's own errors.
"""

from __future__ import annotations

import logging
from typing import Any

import h11
import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.metrics import record_rejected_before_app

log = logging.getLogger("serving.http")
DEFAULT_MAX_HEADER_BYTES = 16 * 1024


class _HintedConnection(h11.Connection):
    """Remembers the status h11 suggests for the last protocol error (431: headers too long).

    h11 bounds only a header block still arriving; one that came complete in a single read
    (up to 256 KiB) is measured here, so the limit holds however the bytes arrive."""

    error_status = 400

    def __init__(self, max_header_bytes: int) -> None:
        super().__init__(h11.SERVER, max_header_bytes)
        self.max_header_bytes = max_header_bytes

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request) and _header_bytes(event) > self.max_header_bytes:
                raise h11.RemoteProtocolError("headers too large", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


def _header_bytes(request: h11.Request) -> int:
    size = len(request.method) + len(request.target) + 11  # "M T HTTP/1.1\r\n"
    return size + sum(len(name) + len(value) + 4 for name, value in request.headers)


class GuardedH11Protocol(H11Protocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self.conn = _HintedConnection(self.max_header_bytes)

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for every h11 protocol error, before any app code runs
        status = self.conn.error_status
        if status == 431:
            detail = (
                f"request line and headers larger than {self.max_header_bytes} bytes "
                "(MLOPS_MAX_HEADER_BYTES)"
            )
        else:
            detail = "malformed HTTP request (request line or header bytes)"
        record_rejected_before_app(status)
        client = self.transport.get_extra_info("peername")
        log.warning(
            detail,
            extra={"fields": {"status": status, "detail": detail, "client": str(client)}},
        )
        body = msgspec.json.encode({"detail": detail})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=status, headers=headers)))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass  # the connection was already mid-response; closing is all that is left
        self.transport.close()
