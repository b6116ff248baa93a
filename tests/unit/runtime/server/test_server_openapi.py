"""The server's OpenAPI document."""

from __future__ import annotations

from mlops_operator.runtime.server.openapi import openapi_document


def test_the_document_names_the_served_model_and_its_endpoints() -> None:
    doc = openapi_document("iris", "3", "0.1.0")
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}:predict",
        "/v1/models/{name}/feedback",
    ):
        assert paths[path]["parameters"][0]["schema"]["enum"] == ["iris"]
        responses = paths[path]["post"]["responses"]
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_an_unversioned_model_has_no_versioned_path() -> None:
    paths = openapi_document("iris", None, "0.1.0")["paths"]
    assert not any("{version}" in path for path in paths)
