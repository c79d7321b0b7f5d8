"""The HTTP contract against a live server: statuses, bodies, and predictions equal to the
pipeline's own."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.serving.conftest import (
    ABALONE_NUMERIC,
    ABALONE_RECORD,
    IRIS_CLASSES,
    IRIS_RECORD,
    iris_frame,
    manifest_for,
    publish,
)
from mlops_contract.record import example_record, fields_from_schema


def abalone_rows(count: int) -> list[dict]:
    rng = np.random.default_rng(7)
    sexes = ["M", "F", "I"]
    return [
        {
            "Sex": sexes[i % 3],
            **{
                column.replace(" ", "_"): round(float(rng.uniform(0.05, 0.9)), 4)
                for column in ABALONE_NUMERIC
            },
        }
        for i in range(count)
    ]


def as_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{k.replace("_", " "): v for k, v in r.items()} for r in records])


def test_health_ping_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ping").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 200
    # probes that ask with HEAD get the status without a body
    for path in ("/health", "/ready"):
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
    assert ready.json()["models"]["iris"] == {"loaded": True, "version": "1", "load_error": None}


def test_models_list_and_one(client):
    models = {model["name"]: model for model in client.get("/models").json()}
    assert set(models) == {"iris", "abalone"}
    iris = models["iris"]
    assert iris["version"] == "1" and iris["task"] == "classification"
    assert iris["classes"] == IRIS_CLASSES
    assert iris["metrics"] == {"test_f1_macro": 0.9}
    assert iris["mlflow_run_id"] == "run-1" and iris["data_version"] == "data-1"
    assert iris["trained_at"].startswith("2025-01-01") and iris["load_error"] is None
    sex = next(field for field in models["abalone"]["inputs"] if field["field"] == "Sex")
    assert sex["type"] == "category" and sex["allowed"] == ["M", "F", "I"]
    assert client.get("/models/abalone").json() == models["abalone"]
    missing = client.get("/models/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_predict_one_classifier(client, iris_model):
    response = client.post("/models/iris/predict", json=IRIS_RECORD)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "iris" and body["version"] == "1"
    assert body["request_id"] == response.headers["x-request-id"]
    expected = iris_model.predict(pd.DataFrame([IRIS_RECORD]))[0]
    assert body["prediction"] == expected
    assert set(body["probabilities"]) == set(IRIS_CLASSES)
    assert math.isclose(sum(body["probabilities"].values()), 1.0)


def test_predict_without_a_model_name_needs_one_model_served(client, make_server, iris_model):
    several = client.get("/predict", params=IRIS_RECORD)
    assert several.status_code == 404
    assert "/models/iris/predict" in several.json()["detail"]
    assert "/models/abalone/predict" in several.json()["detail"]
    alone = make_server()
    publish(alone.models_dir, "iris", iris_model, "1")
    with alone.client() as http:
        alone.wait_until(lambda: http.get("/ready").status_code == 200)
        short = http.post("/predict", json=IRIS_RECORD)
        named = http.post("/models/iris/predict", json=IRIS_RECORD)
        invoked = http.post("/invocations", json={"dataframe_records": [IRIS_RECORD]})
    assert short.status_code == 200 and short.json()["prediction"] == named.json()["prediction"]
    assert invoked.json()["predictions"] == [named.json()["prediction"]]


def test_predict_list_classifier_equals_pipeline(client, iris_model):
    features, _ = iris_frame()
    records = features.to_dict(orient="records")
    body = client.post("/models/iris/predict", json=records).json()
    assert body["predictions"] == iris_model.predict(features).tolist()
    expected_proba = iris_model.predict_proba(features)
    got_proba = [[row[label] for label in IRIS_CLASSES] for row in body["probabilities"]]
    assert np.array_equal(np.array(got_proba), expected_proba)
    assert all(math.isclose(sum(row.values()), 1.0) for row in body["probabilities"])


def test_predict_abalone_api_field_names(client, abalone_model):
    one = client.post("/models/abalone/predict", json=ABALONE_RECORD)
    assert one.status_code == 200
    assert "probabilities" not in one.json()
    assert one.json()["prediction"] == abalone_model.predict(as_frame([ABALONE_RECORD]))[0]
    records = abalone_rows(50)
    many = client.post("/models/abalone/predict", json=records).json()
    assert many["predictions"] == abalone_model.predict(as_frame(records)).tolist()


def test_request_id_is_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    body = client.post(
        "/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "trace-456"}
    ).json()
    assert body["request_id"] == "trace-456"


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": [ABALONE_RECORD, ABALONE_RECORD]},
        {"instances": [ABALONE_RECORD, ABALONE_RECORD]},
        {"inputs": [ABALONE_RECORD, ABALONE_RECORD]},
        {"inputs": {key: [value, value] for key, value in ABALONE_RECORD.items()}},
        {
            "dataframe_split": {
                "columns": list(ABALONE_RECORD),
                "data": [list(ABALONE_RECORD.values())] * 2,
            }
        },
        # MLflow clients send the model's own column names
        {"dataframe_records": [{k.replace("_", " "): v for k, v in ABALONE_RECORD.items()}] * 2},
    ],
    ids=["records", "instances", "inputs", "inputs-columnar", "split", "column-names"],
)
def test_mlflow_invocations(client, abalone_model, body):
    response = client.post("/models/abalone/invocations", json=body)
    assert response.status_code == 200, response.text
    expected = abalone_model.predict(as_frame([ABALONE_RECORD] * 2)).tolist()
    assert response.json() == {"predictions": expected}


def test_invocations_bad_format(client):
    response = client.post("/models/abalone/invocations", json={"rows": [ABALONE_RECORD]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "(body)"


def test_unknown_model_404(client):
    for path in ("/models/nope/predict", "/models/nope/invocations"):
        response = client.post(path, json=IRIS_RECORD)
        assert response.status_code == 404
        assert "nope" in response.json()["detail"]


# the last two: invalid UTF-8 inside a string, where the JSON itself is well-formed
@pytest.mark.parametrize(
    "raw", [b"{bad", b"", b'{"a": 1', b"\xff\xfe", b'{"sepal_length": "\xff\xfe"}', b'["\xc3"]']
)
def test_malformed_json_400(client, raw):
    response = client.post("/models/iris/predict", content=raw)
    assert response.status_code == 400
    assert response.json()["detail"]


INVALID = [
    (
        {k: v for k, v in IRIS_RECORD.items() if k != "petal_width"},
        {"petal_width": "field required"},
    ),
    ({**IRIS_RECORD, "sepal_length": "5.1"}, {"sepal_length": "must be a number"}),
    ({**IRIS_RECORD, "sepal_length": True}, {"sepal_length": "must be a number"}),
    ({**IRIS_RECORD, "sepal_length": None}, {"sepal_length": "must not be null"}),
    ({**IRIS_RECORD, "colour": "blue"}, {"colour": "unknown field"}),
    ({**IRIS_RECORD, "sepal_length": 99}, {"sepal_length": "must be <= 15.0"}),
    ({**IRIS_RECORD, "sepal_length": -1}, {"sepal_length": "must be >= 0.0"}),
]


@pytest.mark.parametrize("record, expected", INVALID)
def test_invalid_record_422(client, record, expected):
    response = client.post("/models/iris/predict", json=record)
    assert response.status_code == 422
    errors = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert errors == expected


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_422(client, literal):
    raw = (
        b'{"sepal_length": ' + literal + b', "sepal_width": 3.5, "petal_length": 1.4,'
        b' "petal_width": 0.2}'
    )
    response = client.post("/models/iris/predict", content=raw)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "sepal_length", "message": "must be a finite number"}
    ]


def test_category_not_allowed_and_every_bad_field_named(client):
    records = [
        ABALONE_RECORD,
        ABALONE_RECORD,
        ABALONE_RECORD,
        {**ABALONE_RECORD, "Sex": "X", "Length": 2},
    ]
    response = client.post("/models/abalone/predict", json=records)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"[3].Sex", "[3].Length"}


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"[1, 2]", b"null"])
def test_body_shape_422(client, raw):
    response = client.post("/models/iris/predict", content=raw)
    assert response.status_code == 422
    assert response.json()["errors"]


def test_body_over_limit_413(client):
    response = client.post("/models/iris/predict", content=b"[" + b" " * (1 << 20) + b"]")
    assert response.status_code == 413
    assert "MLOPS_MAX_BODY_BYTES" in response.json()["detail"]


def test_configured_body_limit(make_server, iris_model):
    from mlops_assets_tests.serving.conftest import publish

    server = make_server(max_body_bytes=200)
    publish(server.models_dir, "iris", iris_model, "1")
    server.wait_until(lambda: server.service.store.model("iris") is not None)
    with server.client() as http:
        assert http.post("/models/iris/predict", json=IRIS_RECORD).status_code == 200
        assert http.post("/models/iris/predict", json=[IRIS_RECORD] * 5).status_code == 413


def test_errors_are_json(client):
    for response in (client.get("/nowhere"), client.delete("/health")):
        assert response.headers["content-type"].startswith("application/json")
        assert "detail" in response.json()


def test_metrics(client):
    client.post("/models/iris/predict", json=IRIS_RECORD)
    text = client.get("/metrics").text
    assert (
        'mlops_http_requests_total{method="POST",route="/models/{name}/predict",status="200"}'
        in text
    )
    assert 'mlops_predictions_total{model="iris",version="1"}' in text
    assert 'mlops_model_info{model="iris",version="1"} 1.0' in text
    assert 'mlops_inference_duration_seconds_bucket{le="0.0001",model="iris",version="1"}' in text
    assert "mlops_http_requests_in_flight" in text
    assert "/models/iris/predict" not in text  # route templates only, never raw URLs


def test_openapi_has_model_schemas(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    record = schemas["AbaloneRecord"]
    assert record["properties"]["Sex"]["enum"] == ["M", "F", "I"]
    length = {"type": "number", "minimum": 0.0, "maximum": 1.0}
    assert {key: record["properties"]["Length"][key] for key in length} == length
    assert record["properties"]["Length"]["description"] == "longest shell measurement"
    assert "Whole_weight" in record["required"]
    assert len(schemas["IrisPredictRequest"]["oneOf"]) == 2
    assert "/models/iris/predict" in document["paths"]


def test_openapi_record_schema_and_examples_are_the_contract(client):
    document = client.get("/openapi.json").json()
    contract = manifest_for("abalone", "3")["input_schema"]
    # the published contract, the /models answer and the OpenAPI component are one schema
    assert client.get("/models/abalone").json()["input_schema"] == contract
    assert document["components"]["schemas"]["AbaloneRecord"] == contract
    example = example_record(fields_from_schema(contract))
    assert example["Length"] == contract["properties"]["Length"]["examples"][0] != 1.0
    predict = document["paths"]["/models/abalone/predict"]
    assert predict["post"]["requestBody"]["content"]["application/json"]["example"] == example
    parameters = {p["name"]: p for p in predict["get"]["parameters"]}
    assert list(parameters) == list(contract["properties"])
    assert parameters["Length"]["in"] == "query" and parameters["Length"]["required"]
    assert parameters["Length"]["schema"]["maximum"] == 1.0
    assert parameters["Length"]["example"] == example["Length"]
    assert client.post("/models/abalone/predict", json=example).status_code == 200


def test_get_predict_answers_like_the_json_body(client):
    posted = client.post("/models/abalone/predict", json=ABALONE_RECORD).json()
    got = client.get("/models/abalone/predict", params=ABALONE_RECORD)
    assert got.status_code == 200, got.text
    assert got.json()["prediction"] == posted["prediction"]
    assert got.json()["request_id"] == got.headers["x-request-id"]
    iris = client.get("/models/iris/predict", params=IRIS_RECORD).json()
    assert (
        iris["probabilities"]
        == client.post("/models/iris/predict", json=IRIS_RECORD).json()["probabilities"]
    )


@pytest.mark.parametrize(
    ("field", "query_value", "json_value"),
    [("Length", "abc", '"abc"'), ("Length", "2", "2"), ("Length", "", '""'),
     ("Diameter", "1e400", "1e400"), ("Sex", "X", '"X"'), ("Sex", "", '""')],
)  # fmt: skip
def test_get_predict_rejects_like_the_json_body(client, field, query_value, json_value):
    got = client.get("/models/abalone/predict", params={**ABALONE_RECORD, field: query_value})
    others = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in ABALONE_RECORD.items() if k != field)
    body = f'{{{others}, "{field}": {json_value}}}'
    posted = client.post("/models/abalone/predict", content=body)
    assert got.status_code == posted.status_code == 422
    assert got.json() == posted.json()


def test_get_predict_names_repeated_and_unknown_parameters(client):
    query = [*IRIS_RECORD.items(), ("sepal_length", 5.0), ("colour", "red")]
    response = client.get("/models/iris/predict", params=query)
    assert response.status_code == 422
    assert {(e["field"], e["message"]) for e in response.json()["errors"]} == {
        ("sepal_length", "given more than once"),
        ("colour", "unknown field"),
    }
    assert client.get("/models/nope/predict", params=IRIS_RECORD).status_code == 404


def test_docs_work_offline(client):
    page = client.get("/docs").text
    assert "swagger-ui" in page and "http" not in page  # no CDN: assets come from this server
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs/static/../../config.py").status_code == 404


def test_index_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_openapi_documents_the_card_lineage_and_explanations(client):
    paths = client.get("/openapi.json").json()["paths"]
    card = paths["/models/{name}/card"]["get"]["responses"]["200"]["content"]
    assert set(card) == {"text/markdown", "application/json"}
    assert (
        "application/json" in paths["/models/{name}/lineage"]["get"]["responses"]["200"]["content"]
    )
    explain = paths["/models/iris/predict"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in explain] == [
        ("explain", "query", "boolean")
    ]
