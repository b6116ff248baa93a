"""Every pod the project makes passes the ``restricted`` Pod Security Standard: the training
Job and the predictor Deployment the operator builds, and the chart's operator Deployment
(rendered by the real helm), so all three run in namespaces that enforce it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.serving.build import build_deployment
from mlops_operator.training.build import build_training_job
from tests.support.pod_security import restricted_violations
from tests.support.tools import CHART, helm_template

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
STORAGE = ResolvedStorage("mlops-artifacts", "models", "http://minio:9000", None, "s3-creds")


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())["spec"]
    return spec


def training_pod() -> dict[str, Any]:
    job = build_training_job(
        name="example",
        namespace="mlops",
        uid="00000000-0000-0000-0000-000000000000",
        spec=TrainingJobSpec.model_validate(example("trainingjob-classification.yaml")),
        image="mlops-operator-runtime:test",
        storage=STORAGE,
        output_uri="s3://mlops-artifacts/models/example/runs/example/",
        allowed_prefixes=["sklearn."],
        ttl_seconds=3600,
    )
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def predictor_pod() -> dict[str, Any]:
    deployment = build_deployment(
        name="breast-cancer",
        namespace="mlops",
        spec=InferenceServiceSpec.model_validate(example("inferenceservice.yaml")),
        model_version=ModelVersionSpec.model_validate(
            example("templates/modelversion-by-hand.yaml")
        ),
        image="mlops-operator-runtime:test",
        storage=STORAGE,
    )
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def chart_operator_pods(*values: str) -> list[dict[str, Any]]:
    docs = helm_template(*values)
    return [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]


@pytest.mark.parametrize("pod", [training_pod, predictor_pod], ids=["training-job", "predictor"])
def test_pods_the_operator_builds_pass_the_restricted_standard(pod: Any) -> None:
    assert restricted_violations(pod()) == []


@pytest.mark.parametrize(
    "values",
    [[], ["-f", str(CHART / "ci" / "all-features-values.yaml")]],
    ids=["default", "all-features"],
)
def test_the_charts_operator_pod_passes_the_restricted_standard(values: list[str]) -> None:
    pods = chart_operator_pods(*values)
    assert pods
    for pod in pods:
        assert restricted_violations(pod) == []


def test_the_check_names_what_a_privileged_pod_breaks() -> None:
    pod = predictor_pod()
    pod["hostNetwork"] = True
    pod["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]
    del pod["securityContext"]
    container = pod["containers"][0]
    container["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    container["ports"] = [{"containerPort": 8080, "hostPort": 80}]
    found = restricted_violations(pod)
    for words in (
        "hostNetwork",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "drop ALL",
        "SYS_ADMIN",
        "non-root",
        "seccompProfile",
        "hostPort 80",
    ):
        assert any(words in message for message in found), (words, found)
