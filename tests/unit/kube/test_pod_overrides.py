"""The pods' overrides: the operator's defaults, the spec winning field by field, labels and
annotations merged, and the operator's own labels never overridden."""

from __future__ import annotations

from typing import Any

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.pod import PodOverrides
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.serving.build import build_deployment
from mlops_operator.settings import Settings
from mlops_operator.training.build import build_training_job

STORAGE = ResolvedStorage("bucket", "models", None, None, None)
MV = ModelVersionSpec.model_validate(
    {
        "model": "iris",
        "version": 3,
        "artifact": {"uri": "s3://bucket/models/iris/3/", "digest": "sha256:" + "a" * 64},
    }
)
GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ZONE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
                    ]
                }
            ]
        }
    }
}
DEFAULTS = PodOverrides.model_validate(
    {
        "serviceAccountName": "ml-pods",
        "nodeSelector": {"pool": "ml"},
        "tolerations": [GPU],
        "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "batch-low",
        "labels": {"team": "platform", "cost-center": "42"},
        "annotations": {"example.com/owner": "platform"},
    }
)


def training_pod(pod_spec: dict[str, Any] | None, defaults: PodOverrides | None) -> dict[str, Any]:
    spec = TrainingJobSpec.model_validate(
        {
            "model": "cancer",
            "dataset": {"uri": "s3://data/cancer.csv", "target": "target"},
            "estimator": {"className": "sklearn.ensemble.RandomForestClassifier"},
            **({"podSpec": pod_spec} if pod_spec is not None else {}),
        }
    )
    job = build_training_job(
        name="cancer-rf",
        namespace="ml",
        uid="uid-1",
        spec=spec,
        image="runtime:1",
        storage=STORAGE,
        output_uri="s3://bucket/models/ml/cancer/runs/x/",
        allowed_prefixes=["sklearn."],
        ttl_seconds=60,
        pod_defaults=defaults,
    )
    template: dict[str, Any] = job["spec"]["template"]
    return template


def serving_pod(pod_spec: dict[str, Any] | None, defaults: PodOverrides | None) -> dict[str, Any]:
    spec = InferenceServiceSpec.model_validate(
        {"model": "iris", **({"podSpec": pod_spec} if pod_spec is not None else {})}
    )
    dep = build_deployment(
        name="iris",
        namespace="ml",
        spec=spec,
        model_version=MV,
        image="runtime:1",
        storage=STORAGE,
        pod_defaults=defaults,
    )
    template: dict[str, Any] = dep["spec"]["template"]
    return template


def test_pods_without_overrides_carry_no_placement_or_account() -> None:
    for template in (training_pod(None, None), serving_pod(None, PodOverrides())):
        pod = template["spec"]
        for field in ("serviceAccountName", "nodeSelector", "tolerations", "affinity"):
            assert field not in pod
        assert pod["automountServiceAccountToken"] is False


def test_operator_defaults_apply_to_training_and_serving_pods() -> None:
    for template in (training_pod(None, DEFAULTS), serving_pod(None, DEFAULTS)):
        pod = template["spec"]
        assert pod["serviceAccountName"] == "ml-pods"
        assert pod["nodeSelector"] == {"pool": "ml"}
        assert pod["tolerations"] == [GPU]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["priorityClassName"] == "batch-low"
        assert template["metadata"]["labels"]["team"] == "platform"
        assert template["metadata"]["annotations"]["example.com/owner"] == "platform"


def test_spec_wins_over_defaults_field_by_field_and_merges_labels() -> None:
    override = {
        "serviceAccountName": "irsa-trainer",
        "affinity": ZONE_AFFINITY,
        "tolerations": [],
        "labels": {"team": "fraud"},
        "annotations": {"example.com/ticket": "ML-7"},
    }
    for template in (training_pod(override, DEFAULTS), serving_pod(override, DEFAULTS)):
        pod = template["spec"]
        assert pod["serviceAccountName"] == "irsa-trainer"
        assert pod["affinity"] == ZONE_AFFINITY
        assert pod["tolerations"] == []  # an explicit empty list clears the default's
        assert pod["nodeSelector"] == {"pool": "ml"}  # not set in the spec: the default's
        assert pod["priorityClassName"] == "batch-low"
        labels = template["metadata"]["labels"]
        assert labels["team"] == "fraud" and labels["cost-center"] == "42"
        annotations = template["metadata"]["annotations"]
        assert annotations["example.com/owner"] == "platform"
        assert annotations["example.com/ticket"] == "ML-7"


def test_own_labels_and_annotations_cannot_be_overridden() -> None:
    hijack = {
        "labels": {
            "mlops.dev/inferenceservice": "other",
            "mlops.dev/trainingjob": "other",
            "mlops.dev/model": "other",
            "app.kubernetes.io/component": "other",
        },
        "annotations": {"prometheus.io/port": "1"},
    }
    serving = serving_pod(hijack, None)
    labels = serving["metadata"]["labels"]
    assert labels["mlops.dev/inferenceservice"] == "iris"
    assert labels["mlops.dev/model"] == "iris"
    assert labels["app.kubernetes.io/component"] == "predictor"
    assert serving["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    training = training_pod(hijack, None)["metadata"]["labels"]
    assert training["mlops.dev/trainingjob"] == "cancer-rf"
    assert training["app.kubernetes.io/component"] == "trainer"


def test_defaults_come_from_the_environment_as_json(monkeypatch: Any) -> None:
    monkeypatch.setenv(
        "MLOPS_TRAINING_POD", '{"nodeSelector": {"gpu": "true"}, "serviceAccountName": "t"}'
    )
    monkeypatch.setenv("MLOPS_SERVING_POD", '{"priorityClassName": "online"}')
    settings = Settings()
    assert settings.training_pod.node_selector == {"gpu": "true"}
    assert settings.training_pod.service_account_name == "t"
    assert settings.serving_pod.priority_class_name == "online"
    assert training_pod(None, settings.training_pod)["spec"]["nodeSelector"] == {"gpu": "true"}
