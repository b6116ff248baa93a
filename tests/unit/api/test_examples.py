"""Every custom resource in examples/ parses with the API types and passes the CRD schema.

Built-in kinds (Namespace, Secret) and the kustomization are checked in
tests/unit/packaging/test_examples_gitops.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api import crds
from mlops_operator.api.base import API_VERSION
from mlops_sandbox import _schema

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").rglob("*.yaml"))
"""Applied ones and templates/ alike: a template a user fills in must still be valid."""
BY_KIND = {r.kind: r for r in crds.RESOURCES}


def custom_resources(path: Path) -> list[dict[str, Any]]:
    """The documents of a file that are our custom resources."""
    return [
        doc
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("apiVersion") == API_VERSION
    ]


CR_EXAMPLES = [path for path in EXAMPLES if custom_resources(path)]


def test_examples_cover_every_kind() -> None:
    kinds = {doc["kind"] for path in CR_EXAMPLES for doc in custom_resources(path)}
    assert kinds == set(BY_KIND)


@pytest.mark.parametrize("path", CR_EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid(path: Path) -> None:
    for doc in custom_resources(path):
        resource = BY_KIND[doc["kind"]]
        resource.spec.model_validate(doc["spec"])
        schema: dict[str, Any] = crds.crd(resource)["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
        structural = _schema.StructuralSchema(schema)
        structural.normalize(doc)
        errors = [e.message for e in structural.validate(doc, None)]
        assert errors == [], errors
