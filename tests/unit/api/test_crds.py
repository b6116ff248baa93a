"""The CRDs in crds/ and the chart's crds/ are generated from the API types and must never be
stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api import crds

REPO = Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("folder", ["crds", "charts/mlops-operator/crds"])
@pytest.mark.parametrize("resource", crds.RESOURCES, ids=lambda r: r.plural)
def test_checked_in_crd_matches_the_types(resource: crds.Resource, folder: str) -> None:
    path = REPO / folder / f"{resource.plural}.mlops.dev.yaml"
    assert path.read_text() == crds.render(resource), (
        f"{path.name} is stale: run `make crds` and commit the result"
    )


@pytest.mark.parametrize("resource", crds.RESOURCES, ids=lambda r: r.plural)
def test_schema_is_structural(resource: crds.Resource) -> None:
    schema = crds.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "anyOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert node.get("type") == "object", f"{path} has properties but no type object"


@pytest.mark.parametrize("resource", crds.RESOURCES, ids=lambda r: r.plural)
def test_every_spec_field_is_described_for_kubectl_explain(resource: crds.Resource) -> None:
    schema = crds.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema["properties"]["spec"]):
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{path}.{name} has no description"


def test_crd_names_and_discovery_metadata() -> None:
    by_kind = {r.kind: crds.crd(r) for r in crds.RESOURCES}
    assert by_kind["TrainingJob"]["spec"]["names"]["shortNames"] == ["tj"]
    assert by_kind["ModelVersion"]["spec"]["names"]["shortNames"] == ["mv"]
    assert by_kind["InferenceService"]["spec"]["names"]["shortNames"] == ["mlsvc"]
    for crd in by_kind.values():
        assert crd["spec"]["names"]["categories"] == ["mlops"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"


def test_model_version_spec_is_immutable_by_cel() -> None:
    mv = next(crds.crd(r) for r in crds.RESOURCES if r.kind == "ModelVersion")
    spec = mv["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {
        "rule": "self == oldSelf",
        "message": spec["x-kubernetes-validations"][0]["message"],
    } in spec["x-kubernetes-validations"]


def test_defaults_and_bounds_reach_the_schema() -> None:
    tj = next(crds.crd(r) for r in crds.RESOURCES if r.kind == "TrainingJob")
    spec = tj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    test_size = spec["properties"]["validation"]["properties"]["testSize"]
    assert test_size["default"] == 0.2
    assert test_size["minimum"] == 0 and test_size["exclusiveMinimum"] is True
    assert spec["properties"]["backoffLimit"]["default"] == 2
    assert spec["required"] == ["model", "dataset", "estimator"]
    params = spec["properties"]["estimator"]["properties"]["params"]
    assert params["x-kubernetes-preserve-unknown-fields"] is True


def test_cli_prints_the_same_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_operator.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["crds"])
    assert exit.value.code == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert {d["metadata"]["name"] for d in docs} == {
        "trainingjobs.mlops.dev",
        "modelversions.mlops.dev",
        "inferenceservices.mlops.dev",
    }


def test_checked_in_api_reference_matches_the_types() -> None:
    from mlops_operator.api import reference

    path = REPO / "docs" / "reference.md"
    assert path.read_text() == reference.render(), (
        "docs/reference.md is stale: run `make crds` and commit the result"
    )
    assert "| `spec.monitoring.metrics[].failureLimit` | integer |" in path.read_text()
