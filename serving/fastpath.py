"""Scoring routes served straight from ASGI, skipping the framework's per-request machinery.

POST /models/{name}/predict and /invocations are the hot path: under load most of a request's
cost was framework overhead (routing, handler signature, response objects), so they are
answered here, and so is every other method on those two paths (GET predict with the record as
query parameters, 405 for the rest), so one place decides what a scoring path answers.
Everything else goes through Litestar. Errors from both take the one path `as_api_error`.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import msgspec
from litestar.exceptions import HTTPException

from serving.errors import ApiError
from serving.explain import explain_requested
from serving.service import PredictionService

log = logging.getLogger("serving.fastpath")
JSON_HEADERS = [(b"content-type", b"application/json")]
SCORING_ROUTES = {
    "predict": "/models/{name}/predict",
    "invocations": "/models/{name}/invocations",
    "feedback": "/models/{name}/feedback",  # labels: the same auth and limits as predictions
    "observations": "/models/{name}/observations",  # a series model's history
}
ALLOWED_METHODS = {
    "predict": ("GET", "POST"),
    "invocations": ("POST",),
    "feedback": ("POST",),
    "observations": ("POST",),
}


SOLE_MODEL = ""  # `/predict`, `/invocations`: the one model the server serves
SHORT_ROUTES = {"/predict": "predict", "/invocations": "invocations"}


def scoring_route(scope: dict) -> tuple[str, str] | None:
    """(model name, action) when the request is for a scoring route, whatever its method;
    `/predict` and `/invocations` name no model (SOLE_MODEL)."""
    parts = scope["path"].split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "models" and parts[3] in SCORING_ROUTES:
        return parts[2], parts[3]
    action = SHORT_ROUTES.get(scope["path"])
    return None if action is None else (SOLE_MODEL, action)


def encode_json(body: Any) -> bytes:
    """The response body, always encodable: text with lone surrogates is sent \\u-escaped
    instead of failing after the status line went out."""
    try:
        return msgspec.json.encode(body)
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True).encode()


def as_api_error(exc: Exception) -> ApiError:
    """Any failure, on the fast path or in Litestar, as the ApiError its answer is made of
    (`ApiError.body()` is the one shape of an error body); an unexpected one is logged and
    answered 500 without its details."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return ApiError(exc.status_code, detail, headers=exc.headers)
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal server error")


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


async def _respond(send: Any, status: int, body: Any, headers: Any = None) -> None:
    encoded = encode_json(body)  # before the status line, so a failure can still be answered
    if headers:
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        headers = [*JSON_HEADERS, *extra]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers or JSON_HEADERS}
    )
    await send({"type": "http.response.body", "body": encoded})


def _not_allowed(scope: dict, action: str) -> ApiError:
    hint = "use POST, or GET with the record as query parameters" if action == "predict" else ""
    detail = f"method {scope['method']} not allowed on {scope['path']}; {hint or 'use POST'}"
    return ApiError(405, detail, headers={"allow": ", ".join(ALLOWED_METHODS[action])})


async def _score(
    service: PredictionService, name: str, action: str, scope: dict, receive: Any
) -> dict:
    if scope["method"] not in ALLOWED_METHODS[action]:
        raise _not_allowed(scope, action)
    config = service.config
    if config.api_key is not None and not _authorized(scope["headers"], config.api_key.encode()):
        raise ApiError(401, "missing or wrong X-API-Key header")
    if scope["method"] == "GET":
        return await service.predict_query(name, scope["query_string"], scope["mlops"])
    declared = _declared_length(scope["headers"])
    if declared is not None and declared > config.max_body_bytes:
        raise ApiError(
            413, f"request body larger than {config.max_body_bytes} bytes (MLOPS_MAX_BODY_BYTES)"
        )
    raw = await read_body(receive, config.max_body_bytes)
    if action == "feedback":
        return service.feedback(name, raw)
    if action == "observations":
        return service.observations(name, raw)
    if action == "predict" and scope["query_string"]:  # no query string: no extra work
        explain = explain_requested(scope["query_string"])
        return await service.predict(name, raw, scope["mlops"], explain=explain)
    score = service.predict if action == "predict" else service.invocations
    return await score(name, raw, scope["mlops"])


async def serve_scoring(
    service: PredictionService, name: str, action: str, scope: dict, receive: Any, send: Any
) -> None:
    scope["path_template"] = SCORING_ROUTES[action]
    try:
        if name == SOLE_MODEL:
            scope["path_template"] = f"/{action}"
            name = service.sole_model()
        result = await _score(service, name, action, scope, receive)
    except Exception as exc:
        error = as_api_error(exc)
        await _respond(send, error.status, error.body(), error.headers)
        return
    await _respond(send, 200, result)
