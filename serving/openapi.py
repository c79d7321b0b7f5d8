"""The OpenAPI document, rebuilt from the loaded manifests so each model gets its own schemas."""

from __future__ import annotations

import re
from typing import Any

from serving.model import LoadedModel

JSON = "application/json"
PROBABILITIES = {"type": "object", "additionalProperties": {"type": "number"}}
NULLABLE_STRING = {"type": ["string", "null"]}


def schema_name(dataset: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", dataset) if part)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def field_schema(spec: dict) -> dict:
    kind = spec["type"]
    if spec.get("allowed") is not None:
        schema: dict[str, Any] = {"enum": list(spec["allowed"])}
    elif kind in ("float", "int"):
        schema = {"type": "number" if kind == "float" else "integer"}
        if spec.get("min") is not None:
            schema["minimum"] = spec["min"]
        if spec.get("max") is not None:
            schema["maximum"] = spec["max"]
    elif kind == "bool":
        schema = {"type": "boolean"}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    else:
        schema = {"type": "string"}
    if spec.get("nullable"):
        schema = {"anyOf": [schema, {"type": "null"}]}
    if spec.get("description"):
        schema["description"] = spec["description"]
    return schema


def record_schema(inputs: list[dict]) -> dict:
    return {
        "type": "object",
        "properties": {spec["field"]: field_schema(spec) for spec in inputs},
        "required": [spec["field"] for spec in inputs if not spec.get("nullable")],
        "additionalProperties": False,
    }


def _split_schema(inputs: list[dict]) -> dict:
    fields = [spec["field"] for spec in inputs]
    return {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "prefixItems": [{"const": name} for name in fields],
                "minItems": len(fields),
                "maxItems": len(fields),
            },
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "prefixItems": [field_schema(spec) for spec in inputs],
                    "minItems": len(fields),
                    "maxItems": len(fields),
                },
            },
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }


def _one_key(key: str, schema: dict) -> dict:
    return {
        "type": "object",
        "properties": {key: schema},
        "required": [key],
        "additionalProperties": False,
    }


def model_schemas(model: LoadedModel) -> dict[str, dict]:
    name, inputs = schema_name(model.name), model.manifest["inputs"]
    records = {"type": "array", "items": ref(f"{name}Record"), "minItems": 1}
    prediction = {"type": "string"} if model.task == "classification" else {"type": "number"}
    response: dict[str, Any] = {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "string"},
            "request_id": {"type": "string"},
            "prediction": prediction,
            "predictions": {"type": "array", "items": prediction},
            "probabilities": {"oneOf": [PROBABILITIES, {"type": "array", "items": PROBABILITIES}]},
        },
        "required": ["model", "version", "request_id"],
    }
    return {
        f"{name}Record": {**record_schema(inputs), "title": f"{model.name} input record"},
        f"{name}PredictRequest": {"oneOf": [ref(f"{name}Record"), records]},
        f"{name}PredictResponse": response,
        f"{name}InvocationsRequest": {
            "oneOf": [
                _one_key("dataframe_split", _split_schema(inputs)),
                _one_key("dataframe_records", records),
                _one_key("instances", records),
                _one_key("inputs", records),
            ]
        },
    }


COMMON_SCHEMAS = {
    "Error": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["field", "message"],
                },
                "maxItems": 100,
            },
            "error_count": {"type": "integer"},
        },
        "required": ["detail"],
    },
    "Status": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    },
    "Ready": {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "detail": NULLABLE_STRING,
            "models": {"type": "object", "additionalProperties": {"type": "object"}},
        },
        "required": ["status", "models"],
    },
    "Model": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "loaded": {"type": "boolean"},
            "version": NULLABLE_STRING,
            "task": NULLABLE_STRING,
            "inputs": {"type": "array", "items": {"type": "object"}},
            "classes": {"type": ["array", "null"]},
            "metrics": {"type": ["object", "null"]},
            "trained_at": NULLABLE_STRING,
            "mlflow_run_id": NULLABLE_STRING,
            "data_version": NULLABLE_STRING,
            "load_error": NULLABLE_STRING,
            "damage": NULLABLE_STRING,
            "fallback_from": NULLABLE_STRING,
        },
        "required": ["name", "loaded", "version", "inputs", "load_error"],
    },
    "Invocations": {
        "type": "object",
        "properties": {"predictions": {"type": "array"}},
        "required": ["predictions"],
    },
}


def _errors(*statuses: int) -> dict:
    reasons = {
        400: "Malformed JSON",
        401: "Missing or wrong X-API-Key",
        404: "Unknown model",
        413: "Body larger than MLOPS_MAX_BODY_BYTES",
        422: "Well-formed but invalid input; `errors` names the bad fields (at most 100; "
        "`error_count` has the total)",
        500: "The model failed on valid input",
        503: "No model loaded; `detail` names the asset to materialize",
    }
    return {str(status): _json(ref("Error"), reasons[status]) for status in statuses}


def _get(summary: str, ok: dict, *errors: int) -> dict:
    return {"get": {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}}


def _scoring_operation(summary: str, request: str, response: dict, secured: bool) -> dict:
    errors = (400, 401, 404, 413, 422, 500, 503) if secured else (400, 404, 413, 422, 500, 503)
    operation = {
        "summary": summary,
        "requestBody": {"required": True, "content": {JSON: {"schema": ref(request)}}},
        "responses": {"200": _json(response, "Predictions"), **_errors(*errors)},
    }
    if secured:
        operation["security"] = [{"ApiKey": []}]
    return {"post": operation}


def build_openapi(models: list[LoadedModel], secured: bool) -> dict:
    schemas = dict(COMMON_SCHEMAS)
    paths: dict[str, Any] = {
        "/health": _get("Liveness", _json(ref("Status"), "Alive")),
        "/ping": {
            "get": {
                "summary": "MLflow-style liveness",
                "responses": {"200": {"description": "Alive"}},
            }
        },
        "/ready": _get("Readiness", _json(ref("Ready"), "Every champion is loaded"), 503),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/models": _get("Served models", _json({"type": "array", "items": ref("Model")}, "Models")),
        "/models/{name}": {
            **_get("One model", _json(ref("Model"), "Model"), 404),
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        },
    }
    for model in models:
        name = schema_name(model.name)
        schemas.update(model_schemas(model))
        paths[f"/models/{model.name}/predict"] = _scoring_operation(
            f"Predict with {model.name}",
            f"{name}PredictRequest",
            ref(f"{name}PredictResponse"),
            secured,
        )
        paths[f"/models/{model.name}/invocations"] = _scoring_operation(
            f"MLflow scoring protocol for {model.name}",
            f"{name}InvocationsRequest",
            ref("Invocations"),
            secured,
        )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "mlops-assets prediction service", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if secured:
        document["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        }
    return document
