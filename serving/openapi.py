"""The OpenAPI document, rebuilt from the loaded models' contracts so each gets its own schemas.

Hand-written rather than Litestar's OpenAPIConfig: the scoring paths and their request schemas
are one per loaded model and change on hot reload, while Litestar generates its document once
from the route handlers (and caches it); the scoring routes are not Litestar handlers at all
(see serving.fastpath). Post-processing Litestar's document would still need every per-model
piece built here, plus undoing what it generates for the fixed routes.
"""

from __future__ import annotations

import re
from typing import Any

from mlops_contract.record import RecordField, example_record, property_schema, record_schema
from serving.model import LoadedModel

JSON = "application/json"
PROBABILITIES = {"type": "object", "additionalProperties": {"type": "number"}}
NULLABLE_STRING = {"type": ["string", "null"]}
SCORING_ERRORS = (400, 404, 413, 422, 500, 503)
QUERY_ERRORS = (404, 422, 500, 503)


def schema_name(dataset: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", dataset) if part)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def query_parameter(field: RecordField) -> dict:
    """One field as a query parameter of GET predict: a nullable field may be left out (or sent
    empty) instead of being sent as null."""
    schema = property_schema(field)
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    non_null = [kind for kind in types if kind != "null"]
    schema["type"] = non_null[0] if len(non_null) == 1 else non_null
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]
    return {
        "name": field.name,
        "in": "query",
        "required": not field.nullable,
        "schema": schema,
        "example": example_record((field,))[field.name],
    }


def _split_schema(fields: tuple[RecordField, ...]) -> dict:
    names = [field.name for field in fields]
    return {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "prefixItems": [{"const": name} for name in names],
                "minItems": len(names),
                "maxItems": len(names),
            },
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "prefixItems": [property_schema(field) for field in fields],
                    "minItems": len(names),
                    "maxItems": len(names),
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
    name, fields = schema_name(model.name), model.record_fields
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
        # the record contract itself, as /models/{name} publishes it in `input_schema`
        f"{name}Record": model.input_schema,
        f"{name}PredictRequest": {"oneOf": [ref(f"{name}Record"), records]},
        f"{name}PredictResponse": response,
        f"{name}InvocationsRequest": {
            "oneOf": [
                _one_key("dataframe_split", _split_schema(fields)),
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
            "input_schema": {"type": ["object", "null"]},
            "classes": {"type": ["array", "null"]},
            "metrics": {"type": ["object", "null"]},
            "trained_at": NULLABLE_STRING,
            "mlflow_run_id": NULLABLE_STRING,
            "data_version": NULLABLE_STRING,
            "load_error": NULLABLE_STRING,
            "damage": NULLABLE_STRING,
            "fallback_from": NULLABLE_STRING,
            "live": {
                "type": ["object", "null"],
                "description": "The served version's latest day of live traffic (live.json): "
                "served, labelled, coverage, realized metrics, estimated metrics",
            },
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


def _operation(summary: str, ok: dict, errors: tuple[int, ...], secured: bool) -> dict:
    statuses = (401, *errors) if secured else errors
    operation = {"summary": summary, "responses": {"200": ok, **_errors(*sorted(statuses))}}
    if secured:
        operation["security"] = [{"ApiKey": []}]
    return operation


def _scoring_post(summary: str, request: str, example: Any, response: dict, secured: bool) -> dict:
    operation = _operation(summary, _json(response, "Predictions"), SCORING_ERRORS, secured)
    content = {JSON: {"schema": ref(request), "example": example}}
    operation["requestBody"] = {"required": True, "content": content}
    return operation


def _predict_get(model: LoadedModel, response: dict, secured: bool) -> dict:
    summary = f"Predict one {model.name} record given as query parameters"
    operation = _operation(summary, _json(response, "Prediction"), QUERY_ERRORS, secured)
    operation["description"] = (
        "Each field as `?field=value`, parsed by the field's type (numbers, `true`/`false`); "
        "an empty value is null, for nullable fields only. Validated and answered like a "
        "single JSON record."
    )
    operation["parameters"] = [query_parameter(field) for field in model.record_fields]
    return operation


EXPLAIN_PARAMETER = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "Add per record the contribution of each input field (`explanation`, or "
    "`explanations` for a list): the change of the prediction when the field is replaced by "
    "the contract's example value; what interactions leave is `unexplained`.",
}
NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _model_document(summary: str, content: dict) -> dict:
    ok = {"description": summary, "content": content}
    return {**_get(summary, ok, 404, 503), "parameters": [NAME_PARAMETER]}


def card_paths() -> dict[str, dict]:
    card_json = {"schema": {"type": "object"}}
    return {
        "/models/{name}/card": _model_document(
            "The served model's card (Markdown; JSON with `Accept: application/json`)",
            {"text/markdown": {"schema": {"type": "string"}}, JSON: card_json},
        ),
        "/models/{name}/lineage": _model_document(
            "From the served bundle back to the raw files that trained it", {JSON: card_json}
        ),
    }


def scoring_paths(model: LoadedModel, secured: bool) -> dict[str, dict]:
    name, record = schema_name(model.name), example_record(model.record_fields)
    response = ref(f"{name}PredictResponse")
    split = {"columns": list(record), "data": [list(record.values())]}
    predict = _scoring_post(
        f"Predict with {model.name}", f"{name}PredictRequest", record, response, secured
    )
    predict["parameters"] = [EXPLAIN_PARAMETER]
    return {
        f"/models/{model.name}/predict": {
            "post": predict,
            "get": _predict_get(model, response, secured),
        },
        f"/models/{model.name}/invocations": {
            "post": _scoring_post(
                f"MLflow scoring protocol for {model.name}",
                f"{name}InvocationsRequest",
                {"dataframe_split": split},
                ref("Invocations"),
                secured,
            )
        },
        f"/models/{model.name}/feedback": {"post": _feedback_post(model, secured)},
        **_observations_paths(model, secured),
    }


def _observations_paths(model: LoadedModel, secured: bool) -> dict[str, dict]:
    """A series model's `POST observations`: the time, entity and observed fields of a record."""
    series = model.series
    if series is None:
        return {}
    kept = {series.time, series.entity, *series.observed}
    fields = tuple(f.contract for f in model.fields if f.column in kept)
    observation = record_schema(f"{model.name} observation", fields)
    del observation["$schema"]
    accepted = {"type": "object", "properties": {"model": {}, "accepted": {"type": "integer"}}}
    summary = f"Observations of the {model.name} series its lags and windows are computed from"
    operation = _operation(summary, _json(accepted, "Observations kept"), SCORING_ERRORS, secured)
    body = {"oneOf": [observation, {"type": "array", "items": observation, "minItems": 1}]}
    operation["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": body, "example": example_record(fields)}},
    }
    return {f"/models/{model.name}/observations": {"post": operation}}


def _feedback_post(model: LoadedModel, secured: bool) -> dict:
    classes = model.manifest.get("classes")
    actual = {"enum": classes} if classes else {"type": "number"}
    label = {
        "type": "object",
        "required": ["request_id", "actual"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "as the prediction answered it",
            },
            "row": {"type": "integer", "minimum": 0, "description": "record of a batch, from 0"},
            "actual": actual,
            "observed_at": {"type": "string", "format": "date-time"},
        },
    }
    accepted = {"type": "object", "properties": {"model": {}, "accepted": {"type": "integer"}}}
    summary = f"Labels (the actual {model.manifest.get('target')}) for served {model.name} requests"
    operation = _operation(summary, _json(accepted, "Labels kept"), SCORING_ERRORS, secured)
    body = {"oneOf": [label, {"type": "array", "items": label, "minItems": 1}]}
    example = {"request_id": "5b2c...", "actual": classes[0] if classes else 0.0}
    operation["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": body, "example": example}},
    }
    return operation


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
            "parameters": [NAME_PARAMETER],
        },
        **card_paths(),
    }
    for model in models:
        schemas.update(model_schemas(model))
        paths.update(scoring_paths(model, secured))
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
