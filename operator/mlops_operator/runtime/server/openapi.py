"""The OpenAPI document of the model server's HTTP endpoints (``GET /openapi.json``). Pure.

Written for one served model: the ``name`` (and ``version``) path parameters list the one
value the server answers for, so clients and API tools generate working requests. Every
error of every endpoint has the same body, ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any, Final

from mlops_operator.runtime.server.protocol import DATATYPES, OUTPUT_PREDICT, OUTPUT_PROBA

OPENAPI_VERSION: Final = "3.0.3"

_ERROR: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What was wrong, for a person."}},
}
_VALUE: Final = {
    "nullable": True,
    "description": "A feature value: a number, or for a model of raw rows a category (text, "
    "a number or a boolean); null is a missing value (where the model takes one).",
    "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}],
}
_ROWS: Final = {
    "type": "array",
    "minItems": 1,
    "description": "Rows: arrays of feature values in the model's order, or objects keyed "
    "by feature name.",
    "items": {
        "oneOf": [
            {"type": "array", "items": _VALUE},
            {"type": "object", "additionalProperties": _VALUE},
        ]
    },
}
_LABEL: Final = {
    "description": "Ground truth: a class label (string or number), or a finite number for "
    "a regression model.",
    "oneOf": [{"type": "string"}, {"type": "number"}],
}
_PARAMETERS: Final = {"type": "object", "additionalProperties": True}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "The request is malformed or does not fit the model; the message says why.",
        404: "No such model or version on this server.",
        408: "The request body took too long to arrive.",
        413: "The request body is larger than the server's limit.",
        415: "Unsupported Content-Encoding.",
        422: "The model's output for this input is not a finite number.",
        500: "The model failed on a valid request.",
        503: "The model is not loaded yet, or the server is shutting down.",
    }
    return {
        str(status): {
            "description": described[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _infer_request() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "datatype": {"type": "string", "enum": sorted(DATATYPES)},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "description": "[N, n_features] for one input of all features, or [N] (or "
                "[N, 1]) for one input per feature, named after it (GET /v2/models/{name} "
                "lists them).",
            },
            "data": {"type": "array", "description": "The values, nested or flat."},
            "parameters": _PARAMETERS,
        },
    }
    output = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": [OUTPUT_PREDICT, OUTPUT_PROBA]},
            "parameters": _PARAMETERS,
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array", "minItems": 1, "items": output},
        },
    }


def _feedback_request() -> dict[str, Any]:
    by_id = {
        "type": "object",
        "required": ["feedback"],
        "properties": {
            "feedback": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "label"],
                    "properties": {
                        "id": {"type": "string", "description": "A prediction id."},
                        "label": _LABEL,
                    },
                },
            }
        },
    }
    by_rows = {
        "type": "object",
        "required": ["instances", "labels"],
        "properties": {
            "instances": _ROWS,
            "labels": {"type": "array", "minItems": 1, "items": _LABEL},
        },
    }
    return {"oneOf": [by_id, by_rows]}


def openapi_document(name: str, version: str | None, server_version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the server's HTTP endpoints, serving model ``name``
    (at ``version``, if it has one)."""
    name_parameter = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [name]},
        "description": "The served model's name.",
    }
    version_parameter = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [version or ""]},
        "description": "The served model's version.",
    }
    infer = {
        "summary": "Open Inference Protocol v2 inference",
        "requestBody": _json_body(_infer_request()),
        "responses": {
            "200": _ok("Outputs, and one prediction id per row in parameters.prediction_ids."),
            **_errors(400, 404, 408, 413, 415, 422, 500, 503),
        },
    }
    paths: dict[str, Any] = {
        "/v2/models/{name}/infer": {"parameters": [name_parameter], "post": infer},
        "/v1/models/{name}:predict": {
            "parameters": [name_parameter],
            "post": {
                "summary": "KServe v1 prediction",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["instances"],
                        "properties": {"instances": _ROWS},
                    }
                ),
                "responses": {
                    "200": _ok(
                        "predictions and prediction_ids, one per row",
                        {
                            "type": "object",
                            "required": ["predictions", "prediction_ids"],
                            "properties": {
                                "predictions": {"type": "array"},
                                "prediction_ids": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    ),
                    **_errors(400, 404, 408, 413, 415, 422, 500, 503),
                },
            },
        },
        "/v1/models/{name}/feedback": {
            "parameters": [name_parameter],
            "post": {
                "summary": "Ground truth for earlier predictions (by id) or for rows sent along",
                "requestBody": _json_body(_feedback_request()),
                "responses": {
                    "200": _ok(
                        "How many labels were accepted, unknown ids, this worker's rolling "
                        "accuracy and macro precision, recall and F1 (or MAE, RMSE and R²) "
                        "and their samples"
                    ),
                    **_errors(400, 404, 408, 413, 415, 422, 500, 503),
                },
            },
        },
        "/v2/models/{name}": {
            "parameters": [name_parameter],
            "get": {
                "summary": "Model metadata",
                "responses": {"200": _ok("The model's metadata"), **_errors(404, 503)},
            },
        },
        "/v2/models/{name}/ready": {
            "parameters": [name_parameter],
            "get": {
                "summary": "Model readiness",
                "responses": {"200": _ok("Ready"), **_errors(404, 503)},
            },
        },
        "/v1/models/{name}": {
            "parameters": [name_parameter],
            "get": {
                "summary": "Model readiness (v1)",
                "responses": {"200": _ok("Ready"), **_errors(404, 503)},
            },
        },
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _ok("Metadata")}}},
        "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": _ok("Live")}}},
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness: 503 until the model is loaded and while shutting down",
                "responses": {"200": _ok("Ready"), **_errors(503)},
            }
        },
        "/v1/models": {"get": {"summary": "Served models", "responses": {"200": _ok("Models")}}},
    }
    if version:
        paths["/v2/models/{name}/versions/{version}/infer"] = {
            "parameters": [name_parameter, version_parameter],
            "post": infer,
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"mlops-operator model server: {name}",
            "version": server_version,
            "description": "Open Inference Protocol v2 and KServe v1 endpoints of one model, "
            'and its feedback endpoint. Every error answers {"error": message}.',
        },
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR}},
    }
