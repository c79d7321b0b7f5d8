"""The ceiling: the same Litestar + uvicorn stack as ours, on a route that never calls a model.

POST /predict parses the JSON body (Litestar decodes it with msgspec, as for any `data`
parameter) and answers a constant, so its requests/s bound what any model server on this stack,
this machine and this load generator can reach. Run with uvicorn, one worker:

    uvicorn bench.peers.ceiling_server:app --workers 1
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post


@get("/health")
async def health() -> dict:
    return {"status": "ok"}


@post("/predict", status_code=200)
async def predict(data: dict[str, Any]) -> dict:
    return {"prediction": 0.0}


app = Litestar(route_handlers=[health, predict])
