"""Optional API key: scoring needs X-API-Key when MLOPS_API_KEY is set; the rest stays open."""

from __future__ import annotations

from mlops_assets_tests.serving.conftest import IRIS_RECORD, publish

SCORING = [
    ("/models/iris/predict", IRIS_RECORD),
    ("/models/iris/invocations", {"dataframe_records": [IRIS_RECORD]}),
]


def test_key_required_when_set(make_server, iris_model, monkeypatch):
    monkeypatch.setenv("MLOPS_API_KEY", "s3cret")
    server = make_server()
    publish(server.models_dir, "iris", iris_model, "1")
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        for path, body in SCORING:
            assert http.post(path, json=body).status_code == 401
            wrong = http.post(path, json=body, headers={"X-API-Key": "guess"})
            assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
            assert http.post(path, json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        for path in ("/health", "/ready", "/metrics", "/models", "/models/iris", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        schemes = http.get("/openapi.json").json()["components"]["securitySchemes"]
        assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_no_key_needed_when_unset(client):
    for path, body in SCORING:
        assert client.post(path, json=body).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]
