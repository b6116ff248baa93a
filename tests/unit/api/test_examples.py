"""Every manifest in examples/ parses with the API types and passes the CRD schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api import crds
from mlops_operator.sandbox import _schema

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))
BY_KIND = {r.kind: r for r in crds.RESOURCES}


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        resource = BY_KIND[doc["kind"]]
        resource.spec.model_validate(doc["spec"])
        schema: dict[str, Any] = crds.crd(resource)["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
        structural = _schema.StructuralSchema(schema)
        structural.normalize(doc)
        errors = [e.message for e in structural.validate(doc, None)]
        assert errors == [], errors
