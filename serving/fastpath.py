"""Scoring routes served straight from ASGI, skipping the framework's per-request machinery.

POST /models/{name}/predict and /invocations are the hot path: under load most of a request's
cost was framework overhead (routing, handler signature, response objects), so they are
answered here. Everything else, including errors on other routes, goes through Litestar.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import msgspec

from serving.service import ApiError, PredictionService

log = logging.getLogger("serving.fastpath")
JSON_HEADERS = [(b"content-type", b"application/json")]
SCORING_ROUTES = {"predict": "/models/{name}/predict", "invocations": "/models/{name}/invocations"}


def scoring_route(scope: dict) -> tuple[str, str] | None:
    """(model name, action) when the request is for a scoring route, whatever its method."""
    parts = scope["path"].split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "models" and parts[3] in SCORING_ROUTES:
        return parts[2], parts[3]
    return None


def encode_json(body: Any) -> bytes:
    """The response body, always encodable: text with lone surrogates is sent \\u-escaped
    instead of failing after the status line went out."""
    try:
        return msgspec.json.encode(body)
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True).encode()


async def read_body(receive: Any, limit: int) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes (MLOPS_MAX_BODY_BYTES)")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _authorized(headers: list[tuple[bytes, bytes]], api_key: bytes) -> bool:
    sent = next((value for name, value in headers if name == b"x-api-key"), b"")
    return hmac.compare_digest(sent, api_key)


async def _respond(send: Any, status: int, body: Any, headers: list | None = None) -> None:
    encoded = encode_json(body)  # before the status line, so a failure can still be answered
    await send(
        {"type": "http.response.start", "status": status, "headers": headers or JSON_HEADERS}
    )
    await send({"type": "http.response.body", "body": encoded})


async def _not_allowed(scope: dict, send: Any) -> None:
    detail = f"method {scope['method']} not allowed on {scope['path']}; use POST"
    await _respond(send, 405, {"detail": detail}, [*JSON_HEADERS, (b"allow", b"POST")])


async def serve_scoring(
    service: PredictionService, name: str, action: str, scope: dict, receive: Any, send: Any
) -> None:
    scope["path_template"] = SCORING_ROUTES[action]
    if scope["method"] != "POST":
        await _not_allowed(scope, send)
        return
    config = service.config
    try:
        if config.api_key is not None and not _authorized(
            scope["headers"], config.api_key.encode()
        ):
            raise ApiError(401, "missing or wrong X-API-Key header")
        declared = _declared_length(scope["headers"])
        if declared is not None and declared > config.max_body_bytes:
            raise ApiError(
                413,
                f"request body larger than {config.max_body_bytes} bytes (MLOPS_MAX_BODY_BYTES)",
            )
        raw = await read_body(receive, config.max_body_bytes)
        score = service.predict if action == "predict" else service.invocations
        result = await score(name, raw, scope["mlops"])
    except ApiError as exc:
        await _respond(send, exc.status, exc.body())
        return
    except Exception:
        log.exception("unhandled error scoring %s", name)
        await _respond(send, 500, {"detail": "internal server error"})
        return
    await _respond(send, 200, result)
