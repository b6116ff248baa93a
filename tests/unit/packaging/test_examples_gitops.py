"""examples/ as a GitOps layout: `kubectl kustomize examples/` renders every example into the
`mlops` namespace, the built-in kinds pass Kubernetes' own schemas, and nothing in it would
harm a cluster it is applied to: no Secret (the credentials template, outside the
kustomization, holds no key) and no ModelVersion with a placeholder digest. The custom
resources are validated against the CRD schemas in tests/unit/api/test_examples.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlops_operator.api.base import API_VERSION
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.kube.pod import storage_env
from mlops_operator.settings import Settings
from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
KUSTOMIZATION = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
NAMESPACE = "mlops"
TEMPLATES = EXAMPLES / "templates"
BUILTIN_KINDS = {("v1", "Namespace"), ("v1", "Secret")}
PLACEHOLDER = "REPLACE_ME"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The kubectl binary, fetched into .tools/bin when missing."""
    return tool("kubectl")


@pytest.fixture(scope="session")
def rendered(kubectl: Path) -> list[dict[str, Any]]:
    """The output of `kubectl kustomize examples/`."""
    result = subprocess.run(
        [str(kubectl), "kustomize", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomization_lists_every_example_once() -> None:
    listed = KUSTOMIZATION["resources"]
    on_disk = {p.name for p in EXAMPLES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk)
    assert KUSTOMIZATION["namespace"] == NAMESPACE


def test_templates_are_in_no_kustomization() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.yaml")) == [
        "modelversion-by-hand.yaml",
        "s3-credentials-secret.yaml",
    ]
    assert not any(name.startswith("templates") for name in KUSTOMIZATION["resources"])
    assert not (TEMPLATES / "kustomization.yaml").exists()


def test_what_a_user_applies_holds_no_secret_and_no_placeholder_digest(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert "Secret" not in kinds  # it would overwrite the Secret the user created
    assert "ModelVersion" not in kinds  # registering by hand needs the user's digest
    assert {"Namespace", "TrainingJob", "InferenceService"} <= kinds


def test_every_example_is_one_of_ours_or_a_known_builtin() -> None:
    # A typo'd apiVersion would otherwise be skipped by the CRD-schema test, not failed.
    paths = [EXAMPLES / name for name in KUSTOMIZATION["resources"]]
    for path in [*paths, *TEMPLATES.glob("*.yaml")]:
        name = path.name
        for doc in documents(path):
            kind = (doc["apiVersion"], doc["kind"])
            assert doc["apiVersion"] == API_VERSION or kind in BUILTIN_KINDS, f"{name}: {kind}"


def test_kustomize_renders_every_example_into_the_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    expected = {
        (doc["kind"], doc["metadata"]["name"])
        for name in KUSTOMIZATION["resources"]
        for doc in documents(EXAMPLES / name)
    }
    assert {(doc["kind"], doc["metadata"]["name"]) for doc in rendered} == expected
    for doc in rendered:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_builtins_pass_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    builtins = [doc for doc in rendered if (doc["apiVersion"], doc["kind"]) in BUILTIN_KINDS]
    builtins += documents(TEMPLATES / "s3-credentials-secret.yaml")
    assert {doc["kind"] for doc in builtins} == {"Namespace", "Secret"}
    version = kubernetes_validate.latest_version()
    for doc in builtins:
        kubernetes_validate.validate(doc, version, strict=True)


def test_secret_template_is_what_the_pods_read_and_holds_no_key() -> None:
    (secret,) = documents(TEMPLATES / "s3-credentials-secret.yaml")
    assert secret["metadata"]["name"] == Settings.model_fields["s3_credentials_secret"].default
    assert "data" not in secret
    # The keys the builders mount into training and predictor pods.
    storage = ResolvedStorage("bucket", "models", None, None, secret["metadata"]["name"])
    mounted = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for env in storage_env(storage)
        if "valueFrom" in env
    }
    assert set(secret["stringData"]) == mounted
    assert set(secret["stringData"].values()) == {PLACEHOLDER}
