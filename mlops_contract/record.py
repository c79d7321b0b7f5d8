"""The record contract of a served model: which fields a request record has and what each accepts.

The pipeline writes it into the bundle manifest as a JSON Schema (draft 2020-12, `input_schema`);
the server reads every column rule from here, never from the spec. Stdlib only, so the prediction
server needs nothing of the pipeline to read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

FieldType = Literal["float", "int", "category", "bool", "date"]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# JSON type of each spec type; a category with non-text allowed values takes theirs instead
JSON_TYPES = {
    "float": "number",
    "int": "integer",
    "category": "string",
    "bool": "boolean",
    "date": "string",
}
FALLBACK_DATE = "2000-01-01"


class ContractError(ValueError):
    """A record contract that cannot be used; the message names the field at fault."""


@dataclass(frozen=True)
class RecordField:
    """One field of a request record: the API name clients send and the rule its value obeys."""

    name: str
    column: str
    type: FieldType
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple | None = None
    description: str = ""
    example: Any = None
    date_format: str | None = None  # how the source file writes a date column (strptime)

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ContractError(
                f"field {self.name!r}: type {self.type!r} is not one of {FIELD_TYPES}"
            )
        if self.allowed is not None and not isinstance(self.allowed, tuple):
            object.__setattr__(self, "allowed", tuple(self.allowed))


def _json_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _json_types(field: RecordField) -> list[str]:
    """The JSON types a non-null value of `field` may have."""
    if field.type == "category" and field.allowed:
        return sorted({_json_type_of(option) for option in field.allowed})
    return [JSON_TYPES[field.type]]


def property_schema(field: RecordField) -> dict[str, Any]:
    """The JSON Schema of one field's value."""
    types = _json_types(field) + (["null"] if field.nullable else [])
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if field.minimum is not None:
        schema["minimum"] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    if field.allowed is not None:
        # `enum` is checked on its own: null must be listed for a nullable field to accept it
        schema["enum"] = list(field.allowed) + ([None] if field.nullable else [])
    if field.type == "date" and field.date_format:
        schema["x-date-format"] = field.date_format  # accepted beside ISO, so no `format`
    elif field.type == "date":
        schema["format"] = "date"
    if field.description:
        schema["description"] = field.description
    if field.example is not None:
        schema["examples"] = [field.example]
    schema["x-column"] = field.column
    schema["x-type"] = field.type
    return schema


def record_schema(name: str, fields: tuple[RecordField, ...]) -> dict[str, Any]:
    """The JSON Schema of one request record: every field that is not nullable present, a
    nullable one null or left out (the server reads a missing nullable field as null)."""
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": name,
        "type": "object",
        "properties": {field.name: property_schema(field) for field in fields},
        "required": [field.name for field in fields if not field.nullable],
        "additionalProperties": False,
    }


def _number(value: Any, where: str) -> float | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ContractError(f"{where}: must be a number, got {value!r}")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ContractError(f"{where}: must be text, got {value!r}")
    return value


def _field_from_property(name: str, schema: Any) -> RecordField:
    where = f"input_schema property {name!r}"
    if not isinstance(schema, dict):
        raise ContractError(f"{where}: must be an object")
    column, kind = schema.get("x-column"), schema.get("x-type")
    if not isinstance(column, str) or kind not in FIELD_TYPES:
        raise ContractError(f"{where}: needs `x-column` (text) and `x-type` (one of {FIELD_TYPES})")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or not types:
        raise ContractError(f"{where}: `type` must be a JSON type or a list of them")
    enum, examples = schema.get("enum"), schema.get("examples")
    if enum is not None and not isinstance(enum, list):
        raise ContractError(f"{where}: `enum` must be a list")
    if examples is not None and (not isinstance(examples, list) or not examples):
        raise ContractError(f"{where}: `examples` must be a non-empty list")
    field = RecordField(
        name=name,
        column=column,
        type=kind,
        nullable="null" in types,
        minimum=_number(schema.get("minimum"), f"{where}: `minimum`"),
        maximum=_number(schema.get("maximum"), f"{where}: `maximum`"),
        allowed=None if enum is None else tuple(value for value in enum if value is not None),
        description=str(schema.get("description", "")),
        example=examples[0] if examples else None,
        date_format=_text(schema.get("x-date-format"), f"{where}: `x-date-format`"),
    )
    if sorted(set(types) - {"null"}) != _json_types(field):
        raise ContractError(f"{where}: `type` {types} does not fit `x-type` {kind!r}")
    return field


def fields_from_schema(schema: Any) -> tuple[RecordField, ...]:
    """The fields of a record schema written by `record_schema`, in property order."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ContractError("input_schema: must be a JSON Schema object with `type: object`")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise ContractError("input_schema: `properties` must be a non-empty object")
    return tuple(_field_from_property(name, value) for name, value in properties.items())


def fallback_value(field: RecordField) -> Any:
    """A value `field` accepts, for a field without an example: an allowed value, a number inside
    [minimum, maximum] (never a 0 outside it), false, a date or empty text."""
    if field.allowed:
        return field.allowed[0]
    if field.type == "bool":
        return False
    if field.type == "date":
        return FALLBACK_DATE
    if field.type == "category":
        return ""
    low, high = field.minimum, field.maximum
    if low is not None and high is not None:
        value = (low + high) / 2
    else:
        value = next((bound for bound in (low, high) if bound is not None), 0)
    if field.type == "float":
        return float(value)
    lowest = -math.inf if low is None else math.ceil(low)
    highest = math.inf if high is None else math.floor(high)
    return int(min(max(round(value), lowest), highest))


def example_record(fields: tuple[RecordField, ...]) -> dict[str, Any]:
    """One valid record: each field's example, or a value its rule accepts when it has none."""
    return {
        field.name: field.example if field.example is not None else fallback_value(field)
        for field in fields
    }


# Manifests written before `input_schema` carry only the `inputs` list of plain rule dicts;
# these two convert between it and the fields, so both stay derived from one source.
def inputs_from_fields(fields: tuple[RecordField, ...]) -> list[dict[str, Any]]:
    """The manifest's legacy `inputs` list for `fields`."""
    return [
        {
            "field": field.name,
            "column": field.column,
            "type": field.type,
            "nullable": field.nullable,
            "min": field.minimum,
            "max": field.maximum,
            "allowed": None if field.allowed is None else list(field.allowed),
            "description": field.description,
        }
        for field in fields
    ]


def fields_from_inputs(inputs: Any) -> tuple[RecordField, ...]:
    """The fields of a legacy `inputs` list (no examples)."""
    if not isinstance(inputs, list) or not inputs:
        raise ContractError("inputs: must be a non-empty list of fields")
    fields = []
    for position, item in enumerate(inputs):
        if not isinstance(item, dict) or not {"field", "column", "type"} <= item.keys():
            raise ContractError(f"inputs[{position}]: needs `field`, `column` and `type`")
        fields.append(
            RecordField(
                name=item["field"],
                column=item["column"],
                type=item["type"],
                nullable=bool(item.get("nullable")),
                minimum=_number(item.get("min"), f"inputs[{position}].min"),
                maximum=_number(item.get("max"), f"inputs[{position}].max"),
                allowed=item.get("allowed"),
                description=item.get("description") or "",
            )
        )
    return tuple(fields)


def manifest_fields(manifest: dict[str, Any]) -> tuple[RecordField, ...]:
    """The record fields of a bundle manifest: its `input_schema`, else its legacy `inputs`."""
    if "input_schema" in manifest:
        return fields_from_schema(manifest["input_schema"])
    return fields_from_inputs(manifest.get("inputs"))
