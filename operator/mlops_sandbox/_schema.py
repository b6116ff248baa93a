"""Structural-schema handling of custom resources, as the Kubernetes API server does it.

For one CRD version's ``openAPIV3Schema`` this module prunes unknown fields, applies
``default`` values, validates with :mod:`jsonschema` and evaluates the one CEL rule the
sandbox understands (the transition rule ``self == oldSelf``), producing field errors in
the shape of the API server's ``metav1.StatusCause``.

Covered: ``properties``, ``items``, ``additionalProperties`` (schema or bool),
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-embedded-resource``,
``x-kubernetes-int-or-string``, ``nullable``, ``default`` (recursively, also inside
inserted defaults), every JSON-schema keyword that draft 4 knows (``enum``, ``minimum``
with boolean ``exclusiveMinimum``, ``pattern``, ``minItems``, ``allOf``/``anyOf``/``oneOf``
…). Not covered: ``format`` checks, ``x-kubernetes-list-type``/``map-keys`` uniqueness,
metadata validation, CEL rules other than ``self == oldSelf`` (skipped, logged once each).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

logger = logging.getLogger(__name__)

# Top-level keys the API server manages itself: never pruned, defaulted or validated here.
_ROOT_MANAGED = frozenset({"apiVersion", "kind", "metadata"})

# Keywords whose values are sub-schemas (single, list of, or mapping of sub-schemas).
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not")
_SUBSCHEMA_LIST = ("allOf", "anyOf", "oneOf")
_SUBSCHEMA_MAP = ("properties",)

_TRANSITION_RULE = re.compile(r"^\s*self\s*==\s*oldSelf\s*$")
_warned_rules: set[str] = set()


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One invalid field, shaped like the API server's ``StatusCause``."""

    reason: str
    """``FieldValueRequired``, ``FieldValueInvalid``, ``FieldValueNotSupported``, …"""
    field: str
    """Dotted path from the object root, e.g. ``spec.dataset.uri`` or ``spec.items[0]``."""
    detail: str
    """The message without the field prefix, e.g. ``Required value``."""

    @property
    def message(self) -> str:
        """The message as the API server renders it: ``<field>: <detail>``."""
        return f"{self.field}: {self.detail}"

    def as_cause(self) -> dict[str, str]:
        """The ``metav1.StatusCause`` dict of this error; like the API server's ``NewInvalid``,
        its message is the detail alone, the field being given beside it."""
        return {"reason": self.reason, "message": self.detail, "field": self.field}


class StructuralSchema:
    """The ``openAPIV3Schema`` of one custom resource version, ready to process objects."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema: dict[str, Any] = copy.deepcopy(dict(schema))
        validation_schema = _to_json_schema(self.schema)
        props = validation_schema.get("properties")
        if isinstance(props, dict):
            for key in _ROOT_MANAGED:
                props.pop(key, None)
        if isinstance(validation_schema.get("required"), list):
            validation_schema["required"] = [
                key for key in validation_schema["required"] if key not in _ROOT_MANAGED
            ]
        self._validator = jsonschema.Draft4Validator(validation_schema)
        _warn_unsupported_rules(self.schema)

    def normalize(self, obj: dict[str, Any]) -> None:
        """Prune unknown fields, drop nulls of non-nullable fields, apply defaults (in place)."""
        for key in list(obj):
            if key in _ROOT_MANAGED:
                continue
            props = self.schema.get("properties", {})
            if key in props:
                _normalize_field(obj, key, props[key])
            elif not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                del obj[key]
        for key, sub in self.schema.get("properties", {}).items():
            if key not in _ROOT_MANAGED and key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
                _normalize_field(obj, key, sub)

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        """Validate ``obj`` (and, on updates, the transition rules against ``old``)."""
        instance = {key: val for key, val in obj.items() if key != "metadata"}
        errors = [
            error for exc in self._validator.iter_errors(instance) for error in _field_errors(exc)
        ]
        if old is not None:
            errors.extend(_check_transitions(self.schema, obj, old, ""))
        unique = {(e.field, e.reason, e.detail): e for e in errors}
        return sorted(unique.values(), key=lambda e: (e.field, e.detail))


def _normalize_field(parent: dict[str, Any], key: str, schema: Mapping[str, Any]) -> None:
    value = parent[key]
    if value is None:
        if schema.get("nullable"):
            return
        del parent[key]  # the API server prunes nulls of non-nullable fields before defaulting
        if "default" in schema:
            parent[key] = copy.deepcopy(schema["default"])
            _normalize_value(parent[key], schema)
        return
    _normalize_value(value, schema)


def _normalize_value(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        _normalize_object(value, schema)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items_schema = schema["items"]
        for index in reversed(range(len(value))):
            if value[index] is None and not items_schema.get("nullable"):
                continue  # a null list item is a validation error, not something to prune
            _normalize_value(value[index], items_schema)


def _normalize_object(value: dict[str, Any], schema: Mapping[str, Any]) -> None:
    props: Mapping[str, Any] = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    for key in list(value):
        if key in props:
            _normalize_field(value, key, props[key])
        elif isinstance(additional, Mapping):
            _normalize_field(value, key, additional)
        elif embedded and key in _ROOT_MANAGED:
            continue
        elif not preserve and additional is not True:
            del value[key]
    for key, sub in props.items():
        if key not in value and isinstance(sub, Mapping) and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
            _normalize_field(value, key, sub)


def _to_json_schema(schema: Any) -> Any:
    """Translate OpenAPI v3 (Kubernetes flavour) into JSON schema draft 4."""
    if not isinstance(schema, Mapping):
        return schema
    result: dict[str, Any] = {}
    for key, val in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "example"):
            continue
        if key in _SUBSCHEMA_ONE:
            result[key] = _to_json_schema(val)
        elif key in _SUBSCHEMA_LIST:
            result[key] = [_to_json_schema(sub) for sub in val]
        elif key in _SUBSCHEMA_MAP:
            result[key] = {name: _to_json_schema(sub) for name, sub in val.items()}
        elif key == "format":
            continue  # the API server checks few formats; draft 4 would check some others
        else:
            result[key] = copy.deepcopy(val)
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in result:
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
    if schema.get("nullable"):
        if isinstance(result.get("type"), str):
            result["type"] = [result["type"], "null"]
        if isinstance(result.get("enum"), list) and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        for key in _SUBSCHEMA_LIST:
            if key in result:
                result[key] = [*result[key], {"type": "null"}]
    return result


def _path(parts: Iterator[Any] | Any) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _render_value(value: Any) -> str:
    """Render a value the way the API server's field errors do (Go's ``%#v``-ish)."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _field_errors(exc: jsonschema.ValidationError) -> list[FieldError]:
    field = _path(iter(exc.absolute_path))
    where = field or "<root>"
    value = exc.instance
    rule = exc.validator_value
    match exc.validator:
        case "required":
            missing = [name for name in rule if not (isinstance(value, dict) and name in value)]
            return [
                FieldError(
                    "FieldValueRequired", f"{field}.{name}" if field else name, "Required value"
                )
                for name in missing
            ]
        case "enum":
            allowed = ", ".join(json.dumps(item) for item in rule)
            detail = f"Unsupported value: {_render_value(value)}: supported values: {allowed}"
            return [FieldError("FieldValueNotSupported", where, detail)]
        case "type":
            expected = rule if isinstance(rule, str) else " or ".join(rule)
            actual = _type_name(value)
            detail = (
                f'Invalid value: "{actual}": {where} in body must be of type {expected}: "{actual}"'
            )
            return [FieldError("FieldValueTypeInvalid", where, detail)]
        case "minimum" | "maximum":
            exclusive = bool(exc.schema.get(f"exclusive{exc.validator.capitalize()}"))
            relation = "greater" if exc.validator == "minimum" else "less"
            bound = f"{relation} than" if exclusive else f"{relation} than or equal to"
            detail = f"{where} in body should be {bound} {rule}"
        case "minLength":
            detail = f"{where} in body should be at least {rule} chars long"
        case "maxLength":
            detail = f"{where} in body may not be more than {rule} bytes"
            return [FieldError("FieldValueTooLong", where, f"Too long: {detail}")]
        case "pattern":
            detail = f"{where} in body should match '{rule}'"
        case "minItems":
            detail = f"{where} in body should have at least {rule} items"
        case "maxItems":
            return [
                FieldError(
                    "FieldValueTooMany",
                    where,
                    f"Too many: {len(value)}: must have at most {rule} items",
                )
            ]
        case "minProperties":
            detail = f"{where} in body should have at least {rule} properties"
        case "maxProperties":
            detail = f"{where} in body should have at most {rule} properties"
        case "multipleOf":
            detail = f"{where} in body should be a multiple of {rule}"
        case "uniqueItems":
            return [
                FieldError("FieldValueDuplicate", where, f"Duplicate value: {_render_value(value)}")
            ]
        case _:
            detail = exc.message
    return [
        FieldError("FieldValueInvalid", where, f"Invalid value: {_render_value(value)}: {detail}")
    ]


def _warn_unsupported_rules(schema: Any) -> None:
    """Log, once per rule text, the CEL rules that the sandbox does not evaluate."""
    if not isinstance(schema, Mapping):
        return
    for rule in schema.get("x-kubernetes-validations", []) or []:
        text = str(rule.get("rule", ""))
        if not _TRANSITION_RULE.match(text) and text not in _warned_rules:
            _warned_rules.add(text)
            logger.debug("The sandbox API does not evaluate the CEL rule %r; skipped.", text)
    for key in _SUBSCHEMA_ONE:
        _warn_unsupported_rules(schema.get(key))
    for key in _SUBSCHEMA_LIST:
        for sub in schema.get(key, []) or []:
            _warn_unsupported_rules(sub)
    for sub in (schema.get("properties") or {}).values():
        _warn_unsupported_rules(sub)


def _check_transitions(
    schema: Mapping[str, Any], new: Any, old: Any, path: str
) -> list[FieldError]:
    """Evaluate ``x-kubernetes-validations`` transition rules where both values exist."""
    errors: list[FieldError] = []
    for rule in schema.get("x-kubernetes-validations", []) or []:
        text = str(rule.get("rule", ""))
        if _TRANSITION_RULE.match(text):
            if new != old:
                message = rule.get("message") or f"failed rule: {text}"
                detail = f"Invalid value: {json.dumps(_type_name(new))}: {message}"
                errors.append(
                    FieldError(rule.get("reason") or "FieldValueInvalid", path or "<root>", detail)
                )
    if isinstance(new, dict) and isinstance(old, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for key in new.keys() & old.keys():
            if not path and key in _ROOT_MANAGED:
                continue
            sub = props.get(key, additional if isinstance(additional, Mapping) else None)
            if isinstance(sub, Mapping):
                child = f"{path}.{key}" if path else key
                errors.extend(_check_transitions(sub, new[key], old[key], child))
    return errors
