"""Children patched against what the operator last applied (their ``mlops.dev/last-applied``
record), against the sandbox API: what the user drops from the spec leaves the child, what
another controller or tool set stays, a child written by an operator version that kept no
record is adopted and converges, and a field an older build set on a Service goes."""

from __future__ import annotations

import json
from typing import Any

from mlops_operator.kube import client as k8s
from mlops_operator.kube.names import LAST_APPLIED, SPEC_HASH
from tests.controllers.conftest import Cluster
from tests.support.factories import inferenceservice

IS = "InferenceService"
SVC = "svc"
PREDICTOR = "svc-predictor"
GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
RESTARTED = "kubectl.kubernetes.io/restartedAt"


async def predictor(cluster: Cluster, res: k8s.Resource = k8s.DEPLOYMENTS) -> dict[str, Any]:
    found = await cluster.get(res, PREDICTOR)
    assert found is not None
    return found


async def serving(cluster: Cluster, **spec: Any) -> dict[str, Any]:
    """A version of ``iris`` and a service of it, reconciled: its Deployment."""
    await cluster.version("iris", 1)
    await cluster.create(inferenceservice(SVC, "iris", **spec))
    await cluster.reconcile(IS, SVC)
    return await predictor(cluster)


async def edit_pod_spec(cluster: Cluster, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The user merge-patches ``spec.podSpec``; one reconcile; the Deployment after it."""
    await cluster.patch(k8s.INFERENCESERVICES, SVC, {"spec": {"podSpec": pod_spec}})
    await cluster.reconcile(IS, SVC)
    return await predictor(cluster)


async def test_overrides_dropped_from_the_spec_leave_the_predictor(cluster: Cluster) -> None:
    pod = {
        "serviceAccountName": "iris-irsa",
        "nodeSelector": {"pool": "inference"},
        "tolerations": [GPU],
        "labels": {"team": "fraud"},
        "annotations": {"sidecar.example.com/inject": "false"},
    }
    dep = await serving(cluster, podSpec=pod)
    template = dep["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {"pool": "inference"}
    assert template["metadata"]["labels"]["team"] == "fraud"
    record = json.loads(dep["metadata"]["annotations"][LAST_APPLIED])
    assert record["spec"]["template"]["spec"]["tolerations"] == [GPU]

    dropped = {k: None for k in pod}
    dep = await edit_pod_spec(cluster, dropped)

    template = dep["spec"]["template"]
    for field in ("nodeSelector", "tolerations", "serviceAccountName", "serviceAccount"):
        assert field not in template["spec"], field
    assert "team" not in template["metadata"]["labels"]
    assert "sidecar.example.com/inject" not in template["metadata"]["annotations"]
    # The operator's own labels and scrape annotations are still there.
    assert template["metadata"]["labels"]["mlops.dev/inferenceservice"] == SVC
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    record = json.loads(dep["metadata"]["annotations"][LAST_APPLIED])
    assert "nodeSelector" not in record["spec"]["template"]["spec"]


async def test_fields_others_set_survive_our_patch(cluster: Cluster) -> None:
    autoscaling = {"minReplicas": 1, "maxReplicas": 5, "targetRequestsPerSecond": 2}
    await serving(cluster, autoscaling=autoscaling)
    # The autoscaler scales; a tool annotates the Deployment; `kubectl rollout restart`
    # stamps the template.
    await cluster.user.patch(
        k8s.DEPLOYMENTS,
        cluster.namespace,
        PREDICTOR,
        {"spec": {"replicas": 4}},
        subresource="scale",
    )
    stamp = "2026-11-30T22:00:00Z"
    others = {
        "metadata": {"annotations": {"example.com/owner": "ml-platform"}},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED: stamp}}}},
    }
    await cluster.patch(k8s.DEPLOYMENTS, PREDICTOR, others)

    dep = await edit_pod_spec(cluster, {"nodeSelector": {"pool": "inference"}})

    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "inference"}
    assert dep["spec"]["replicas"] == 4
    assert dep["metadata"]["annotations"]["example.com/owner"] == "ml-platform"
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED] == stamp


async def test_turning_autoscaling_on_hands_the_running_replicas_to_the_autoscaler(
    cluster: Cluster,
) -> None:
    dep = await serving(cluster, replicas=3)
    assert dep["spec"]["replicas"] == 3
    autoscaling = {"minReplicas": 1, "maxReplicas": 5, "targetRequestsPerSecond": 2}

    await cluster.patch(k8s.INFERENCESERVICES, SVC, {"spec": {"autoscaling": autoscaling}})
    await cluster.reconcile(IS, SVC)

    dep = await predictor(cluster)
    assert await cluster.get(k8s.HPAS, PREDICTOR) is not None
    # Not reset to the API server's default of 1 on the way: the autoscaler starts from 3.
    assert dep["spec"]["replicas"] == 3
    assert "replicas" not in json.loads(dep["metadata"]["annotations"][LAST_APPLIED])["spec"]


async def test_a_deployment_of_an_operator_that_kept_no_record_is_adopted_and_converges(
    cluster: Cluster,
) -> None:
    pod = {"nodeSelector": {"pool": "inference"}, "tolerations": [GPU], "labels": {"team": "a"}}
    await serving(cluster, podSpec=pod)
    # As the previous operator version left it: no record.
    unrecorded = {"metadata": {"annotations": {LAST_APPLIED: None}}}
    await cluster.patch(k8s.DEPLOYMENTS, PREDICTOR, unrecorded)
    await cluster.restart()

    dep = await edit_pod_spec(cluster, {"nodeSelector": None, "tolerations": None})

    assert "nodeSelector" not in dep["spec"]["template"]["spec"]
    assert "tolerations" not in dep["spec"]["template"]["spec"]
    assert LAST_APPLIED in dep["metadata"]["annotations"]
    # From now on the record tells what goes: the pod label too.
    dep = await edit_pod_spec(cluster, {"labels": None})
    assert "team" not in dep["spec"]["template"]["metadata"]["labels"]
    before = cluster.ctx.kube.requests
    await cluster.reconcile(IS, SVC)
    assert cluster.ctx.kube.requests == before  # converged: nothing more to write


async def test_a_service_field_an_older_build_set_is_removed_and_others_stay(
    cluster: Cluster,
) -> None:
    await serving(cluster)
    service = await predictor(cluster, k8s.SERVICES)
    # An older operator built the Service with session affinity and a metrics port, and
    # recorded them; a DNS tool annotated it since.
    metrics = {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}
    older = json.loads(service["metadata"]["annotations"][LAST_APPLIED])
    older["spec"] = {
        **older["spec"],
        "sessionAffinity": "ClientIP",
        "ports": [*older["spec"]["ports"], metrics],
    }
    await cluster.patch(
        k8s.SERVICES,
        PREDICTOR,
        {
            "metadata": {
                "annotations": {
                    SPEC_HASH: "older",
                    LAST_APPLIED: json.dumps(older),
                    "dns.example.com/hostname": "iris.example.com",
                }
            },
            "spec": {"sessionAffinity": "ClientIP", "ports": older["spec"]["ports"]},
        },
    )

    await cluster.reconcile(IS, SVC)

    service = await predictor(cluster, k8s.SERVICES)
    assert "sessionAffinity" not in service["spec"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["http", "grpc"]
    assert service["metadata"]["annotations"]["dns.example.com/hostname"] == "iris.example.com"
    assert service["metadata"]["annotations"][SPEC_HASH] != "older"
