"""The HTTP app: `serving.app:app` for any ASGI server, or `create_app()` for a custom setup.

Litestar serves the read-only routes; the scoring routes are answered by `serving.fastpath`
inside the outer `ObservedApp` layer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException

from serving.config import ServingConfig, config_from_env
from serving.fastpath import encode_json
from serving.logs import configure_logging
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.middleware import ObservedApp
from serving.openapi import build_openapi
from serving.service import ApiError, PredictionService

log = logging.getLogger("serving.app")
STATIC_DIR = Path(__file__).parent / "static"
JSON = "application/json"
# Swagger UI's files ship with the swagger-ui-py package, so /docs works offline
SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
}
DOCS_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Prediction API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


def swagger_static_dir() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(encode_json(body), status_code=status, media_type=JSON, headers=headers)


def _api_error(_: Request, exc: ApiError) -> Response:
    return json_response(exc.body(), exc.status)


def _http_error(_: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return json_response({"detail": detail}, exc.status_code, exc.headers)


def _unexpected_error(_: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return json_response({"detail": "internal server error"}, 500)


def build_routes(service: PredictionService) -> list:
    api_key = service.config.api_key
    index_page = (STATIC_DIR / "index.html").read_bytes()

    @get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @get("/ping")
    async def ping() -> Response:
        return Response(b"", media_type="text/plain")

    @get("/ready")
    async def ready() -> Response:
        ok, body = service.readiness()
        return json_response(body, 200 if ok else 503)

    @get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @get("/models")
    async def models() -> Response:
        return json_response(service.models())

    @get("/models/{name:str}")
    async def model(name: str) -> Response:
        return json_response(service.describe(name))

    @get("/openapi.json")
    async def openapi() -> Response:
        return json_response(build_openapi(service.store.loaded(), secured=api_key is not None))

    @get("/docs")
    async def docs() -> Response:
        return Response(DOCS_PAGE, media_type="text/html")

    @get("/docs/static/{file_name:str}")
    async def docs_static(file_name: str) -> Response:
        if file_name not in SWAGGER_FILES:
            raise HTTPException(status_code=404, detail=f"no static file {file_name!r}")
        content = (swagger_static_dir() / file_name).read_bytes()
        return Response(content, media_type=SWAGGER_FILES[file_name])

    @get("/")
    async def index() -> Response:
        return Response(index_page, media_type="text/html")

    return [health, ping, ready, metrics, models, model, openapi, docs, docs_static, index]


def create_app(
    models_dir: Path | str | None = None, config: ServingConfig | None = None, **overrides
) -> ObservedApp:
    """An ASGI app serving every champion under `models_dir` (default MLOPS_DATA_DIR/models).

    `overrides` set ServingConfig fields (api_key, max_body_bytes, reload_interval, ...)."""
    configure_logging()
    config = config or config_from_env(Path(models_dir) if models_dir else None, **overrides)
    service = PredictionService(config)
    litestar = Litestar(
        route_handlers=build_routes(service),
        on_startup=[service.start],
        on_shutdown=[service.stop],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        openapi_config=None,
        request_max_body_size=config.max_body_bytes,
        logging_config=None,
    )
    litestar.state.service = service
    return ObservedApp(litestar, service.metrics, service.access_log, service)


app = create_app()
