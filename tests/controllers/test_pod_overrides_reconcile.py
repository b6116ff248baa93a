"""podSpec overrides against the sandbox API: applied to the children, removed when dropped
from the spec, and a value the API server refuses is the resource's InvalidSpec."""

from __future__ import annotations

from mlops_operator.kube import client as k8s
from tests.controllers.conftest import Cluster, condition, state
from tests.support.factories import inferenceservice, trainingjob

GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


async def test_a_toleration_the_api_server_refuses_is_invalid_spec_without_a_job(
    cluster: Cluster,
) -> None:
    # The CRD admits it (each field is valid); the API server refuses it on the Job.
    bad = {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]}
    await cluster.create(trainingjob("tj", "iris", cluster.dataset(), podSpec=bad))

    await cluster.reconcile("TrainingJob", "tj")

    tj = await cluster.obj("TrainingJob", "tj")
    assert state(tj, "Ready") == ("False", "InvalidSpec")
    message = condition(tj, "Ready")["message"]
    assert message.startswith("the API server rejected Job tj-train: ")
    assert "value must be empty when `operator` is 'Exists'" in message
    assert await cluster.get(k8s.JOBS, "tj-train") is None
    assert await cluster.reasons("tj") == ["InvalidSpec"]


async def test_a_pod_label_the_api_server_refuses_is_invalid_spec(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await cluster.create(
        inferenceservice("svc", "iris", podSpec={"labels": {"team name": "fraud"}})
    )

    await cluster.reconcile("InferenceService", "svc")

    isvc = await cluster.obj("InferenceService", "svc")
    assert state(isvc, "Ready") == ("False", "InvalidSpec")
    message = condition(isvc, "Ready")["message"]
    assert message.startswith("the API server rejected Deployment svc-predictor: ")
    assert "spec.template.labels" in message
    assert await cluster.get(k8s.DEPLOYMENTS, "svc-predictor") is None
    assert await cluster.reasons("svc") == ["InvalidSpec"]


async def test_overrides_reach_the_predictor_and_go_away_when_dropped(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    pod = {
        "serviceAccountName": "iris-irsa",
        "nodeSelector": {"pool": "inference"},
        "tolerations": [GPU],
        "labels": {"team": "fraud"},
    }
    await cluster.create(inferenceservice("svc", "iris", podSpec=pod))
    await cluster.reconcile("InferenceService", "svc")

    dep = await cluster.get(k8s.DEPLOYMENTS, "svc-predictor")
    assert dep is not None
    template = dep["spec"]["template"]
    assert template["spec"]["serviceAccountName"] == "iris-irsa"
    assert template["spec"]["nodeSelector"] == {"pool": "inference"}
    assert template["spec"]["tolerations"] == [GPU]
    assert template["metadata"]["labels"]["team"] == "fraud"
    assert template["metadata"]["labels"]["mlops.dev/inferenceservice"] == "svc"
    await cluster.deployment_ready("svc-predictor")
    await cluster.reconcile("InferenceService", "svc")

    dropped = {"serviceAccountName": None, "nodeSelector": None, "tolerations": None}
    await cluster.patch(k8s.INFERENCESERVICES, "svc", {"spec": {"podSpec": dropped}})
    await cluster.reconcile("InferenceService", "svc")

    dep = await cluster.get(k8s.DEPLOYMENTS, "svc-predictor")
    assert dep is not None
    spec = dep["spec"]["template"]["spec"]
    assert spec.get("serviceAccountName") in (None, "default")
    assert "nodeSelector" not in spec and "tolerations" not in spec
