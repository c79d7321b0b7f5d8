"""Outermost ASGI layer: request ids, access log, request metrics, in-flight gauge.

It wraps the whole Litestar app so routing errors (404, 405) are logged and counted too.
Handlers report the model, version and row count through `scope["mlops"]`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from serving.fastpath import scoring_route, serve_scoring
from serving.logs import AccessLog
from serving.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            # a client id goes into logs and headers: keep it short and printable
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return uuid.uuid4().hex


class ObservedApp:
    def __init__(
        self, app: Any, metrics: Metrics, access_log: AccessLog, service: Any = None
    ) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.access_log = access_log
        self._request_metrics: dict[tuple, tuple] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        context = {"request_id": request_id}
        scope["mlops"] = context
        status = 500
        header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            scoring = scoring_route(scope) if self.service is not None else None
            if scoring is not None:
                await serve_scoring(self.service, *scoring, scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, context, status, time.perf_counter() - started)

    def _record(self, scope: dict, context: dict, status: int, seconds: float) -> None:
        route = scope.get("path_template") or "(unmatched)"
        labels = (scope["method"], route, status)
        children = self._request_metrics.get(labels)
        if children is None:
            children = self._metric_children(labels)
        children[0].inc()
        children[1].observe(seconds)
        self.access_log.log(
            {
                "request_id": context["request_id"],
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "model": context.get("model"),
                "version": context.get("version"),
                "rows": context.get("rows"),
                "latency_ms": round(seconds * 1000, 3),
            }
        )

    def _metric_children(self, labels: tuple) -> tuple:
        method, route, status = labels
        children = (
            self.metrics.requests.labels(method, route, str(status)),
            self.metrics.request_latency.labels(method, route, str(status)),
        )
        self._request_metrics[labels] = children
        return children
