"""The autoscaling spec and the HorizontalPodAutoscaler built from it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from mlops_operator.api.inferenceservice import AutoscalingSpec, InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.serving.build import build_autoscaler, build_deployment

MV = ModelVersionSpec.model_validate(
    {
        "model": "iris",
        "version": 3,
        "artifact": {"uri": "s3://bucket/models/iris/3/", "digest": "sha256:" + "a" * 64},
    }
)
STORAGE = ResolvedStorage("bucket", "models", "http://minio:9000", None, "s3-creds")


def autoscaler(**autoscaling: Any) -> dict[str, Any]:
    return build_autoscaler(
        name="iris",
        namespace="ml",
        model="iris",
        autoscaling=AutoscalingSpec.model_validate(autoscaling),
    )


def test_requests_per_second_becomes_a_pods_metric_with_an_average_value() -> None:
    hpa = autoscaler(minReplicas=2, maxReplicas=5, targetRequestsPerSecond=2.5)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == "iris-predictor"
    assert hpa["metadata"]["labels"]["mlops.dev/inferenceservice"] == "iris"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "iris-predictor",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "mlops_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]
    assert spec["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}


def test_whole_requests_per_second_are_written_as_the_api_server_would() -> None:
    hpa = autoscaler(maxReplicas=3, targetRequestsPerSecond=20)
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "20"


def test_cpu_utilisation_becomes_a_resource_metric() -> None:
    hpa = autoscaler(
        maxReplicas=4, targetCpuUtilizationPercent=70, scaleDownStabilizationSeconds=30
    )
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30


def test_an_autoscaled_deployment_leaves_its_replicas_to_the_autoscaler() -> None:
    spec = InferenceServiceSpec.model_validate(
        {
            "model": "iris",
            "replicas": 4,
            "autoscaling": {"maxReplicas": 3, "targetRequestsPerSecond": 1},
        }
    )
    dep = build_deployment(
        name="iris", namespace="ml", spec=spec, model_version=MV, image="r:1", storage=STORAGE
    )
    assert "replicas" not in dep["spec"]
    fixed = build_deployment(
        name="iris",
        namespace="ml",
        spec=spec.model_copy(update={"autoscaling": None}),
        model_version=MV,
        image="r:1",
        storage=STORAGE,
    )
    assert fixed["spec"]["replicas"] == 4


@pytest.mark.parametrize(
    ("autoscaling", "message"),
    [
        (
            {"minReplicas": 0, "maxReplicas": 3, "targetRequestsPerSecond": 1},
            "use KEDA or Knative for scale-to-zero",
        ),
        (
            {"minReplicas": 4, "maxReplicas": 3, "targetRequestsPerSecond": 1},
            "maxReplicas (3) must be greater than or equal to minReplicas (4)",
        ),
        ({"maxReplicas": 3}, "set exactly one of targetRequestsPerSecond or targetCpu"),
        (
            {"maxReplicas": 3, "targetRequestsPerSecond": 1, "targetCpuUtilizationPercent": 50},
            "set exactly one of targetRequestsPerSecond or targetCpu",
        ),
    ],
)
def test_impossible_autoscaling_is_refused_with_the_reason(
    autoscaling: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AutoscalingSpec.model_validate(autoscaling)
