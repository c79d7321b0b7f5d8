"""The HTTP app: `serving.app:app` for any ASGI server, or `create_app()` for a custom setup.

Litestar serves the read-only routes; the scoring routes are answered by `serving.fastpath`
inside the outer `ObservedApp` layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get, head
from litestar.static_files import create_static_files_router

from serving import card
from serving.config import ServingConfig, config_from_env
from serving.fastpath import as_api_error, encode_json
from serving.logs import configure_logging
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.middleware import ObservedApp
from serving.openapi import build_openapi
from serving.service import PredictionService

STATIC_DIR = Path(__file__).parent / "static"
JSON = "application/json"
# Swagger UI's files ship with the swagger-ui-py package, so /docs works offline. Not Litestar's
# SwaggerRenderPlugin: it renders Litestar's own generated document (see serving.openapi for why
# that is not the one served) and loads Swagger UI from a CDN unless told otherwise.
DOCS_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Prediction API</title>
<link rel="icon" href="data:,">
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


def _error_response(_: Request, exc: Exception) -> Response:
    error = as_api_error(exc)  # the same error path as the scoring fast path's
    return json_response(error.body(), error.status, error.headers)


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

    # probes (load balancers, `curl -I`) that ask with HEAD get the same status, no body
    @head("/health")
    async def health_head() -> Response[None]:
        return Response(None)

    @head("/ready")
    async def ready_head() -> Response[None]:
        return Response(None, status_code=200 if service.readiness()[0] else 503)

    @get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @get("/models")
    async def models() -> Response:
        return json_response(service.models())

    @get("/models/{name:str}")
    async def model(name: str) -> Response:
        return json_response(service.describe(name))

    @get("/models/{name:str}/card")
    async def model_card(name: str, request: Request) -> Response:
        as_json = card.wants_json(request.headers.get("accept"))
        model = service.resolve(name)
        live = service.live_for(model.name, model.version)
        body = card.card_body(service.config.models_dir, model, as_json, live)
        return Response(body, media_type=JSON if as_json else card.MARKDOWN)

    @get("/models/{name:str}/lineage")
    async def model_lineage(name: str) -> Response:
        return json_response(card.lineage(service.config.models_dir, service.resolve(name)))

    @get("/openapi.json")
    async def openapi() -> Response:
        return json_response(build_openapi(service.store.loaded(), secured=api_key is not None))

    @get("/docs")
    async def docs() -> Response:
        return Response(DOCS_PAGE, media_type="text/html")

    docs_static = create_static_files_router("/docs/static", [swagger_static_dir()])

    @get("/")
    async def index() -> Response:
        return Response(index_page, media_type="text/html")

    return [
        *(health, health_head, ping, ready, ready_head, metrics),
        *(models, model, model_card, model_lineage),
        *(openapi, docs, docs_static, index),
    ]


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
        exception_handlers={Exception: _error_response},
        openapi_config=None,
        request_max_body_size=config.max_body_bytes,
        logging_config=None,
    )
    litestar.state.service = service
    return ObservedApp(litestar, service.metrics, service.access_log, service)


app = create_app()
