"""The InferenceService reconcile with ``spec.autoscaling``: it owns a HorizontalPodAutoscaler,
leaves the Deployment's replicas to it (no fight over them, reconcile after reconcile),
reports the autoscaler's numbers, and deletes it when autoscaling is removed. The test plays
the HPA controller: it writes the Deployment's ``/scale`` and the HPA's status."""

from __future__ import annotations

from typing import Any

from mlops_operator.kube import client as k8s
from tests.controllers.conftest import Cluster, state
from tests.support.factories import inferenceservice

IS = "InferenceService"
SVC = "svc"
PREDICTOR = "svc-predictor"
AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetRequestsPerSecond": 2}


async def autoscaled(cluster: Cluster, **spec: Any) -> None:
    """A served version and a service of it with autoscaling, reconciled once, its
    predictor ready."""
    await cluster.version("iris", 1)
    await cluster.create(inferenceservice(SVC, "iris", autoscaling=AUTOSCALING, **spec))
    await cluster.reconcile(IS, SVC)
    await cluster.deployment_ready(PREDICTOR)
    await cluster.reconcile(IS, SVC)


async def hpa_scales(cluster: Cluster, replicas: int, rps: str) -> None:
    """What the HPA controller does: set the Deployment's scale, report it in its status."""
    await cluster.user.patch(
        k8s.DEPLOYMENTS,
        cluster.namespace,
        PREDICTOR,
        {"spec": {"replicas": replicas}},
        subresource="scale",
    )
    await cluster.user.patch_status(
        k8s.HPAS,
        cluster.namespace,
        PREDICTOR,
        {
            "desiredReplicas": replicas,
            "currentReplicas": replicas,
            "currentMetrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "mlops_requests_per_second"},
                        "current": {"averageValue": rps},
                    },
                }
            ],
        },
    )
    await cluster.deployment_ready(PREDICTOR, replicas)


async def replicas_of(cluster: Cluster) -> int:
    deployment = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


async def test_autoscaling_creates_an_owned_autoscaler_of_the_predictor(cluster: Cluster) -> None:
    await autoscaled(cluster, replicas=5)

    hpa = await cluster.get(k8s.HPAS, PREDICTOR)
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["name"] == PREDICTOR
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    (owner,) = hpa["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == (IS, SVC, True)
    # spec.replicas 5 is ignored: the Deployment got the API server's default, the
    # autoscaler takes it from there.
    assert await replicas_of(cluster) == 1
    isvc = await cluster.obj(IS, SVC)
    assert state(isvc, "Ready") == ("True", "PredictorReady")
    assert isvc["status"]["desiredReplicas"] == 1
    assert "AutoscalingEnabled" in await cluster.reasons(SVC)


async def test_the_operator_never_resets_what_the_autoscaler_scaled(cluster: Cluster) -> None:
    await autoscaled(cluster)
    await hpa_scales(cluster, 3, "4500m")
    deployment = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert deployment is not None

    for _ in range(3):  # reconcile after reconcile: no write to the Deployment
        await cluster.reconcile(IS, SVC)
    after = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]
    assert await replicas_of(cluster) == 3

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["desiredReplicas"] == 3
    assert isvc["status"]["readyReplicas"] == 3
    assert isvc["status"]["autoscaler"]["desiredReplicas"] == 3
    assert isvc["status"]["autoscaler"]["currentMetric"] == "4.5 requests/s"
    assert state(isvc, "Progressing") == ("False", "RolledOut")


async def test_a_new_version_rolls_out_without_touching_the_scale(cluster: Cluster) -> None:
    await autoscaled(cluster)
    await hpa_scales(cluster, 3, "4")
    await cluster.version("iris", 2)
    await cluster.reconcile(IS, SVC)

    deployment = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["mlops.dev/version"] == "2"
    assert deployment["spec"]["replicas"] == 3


async def test_removing_autoscaling_deletes_the_autoscaler_and_fixes_replicas(
    cluster: Cluster,
) -> None:
    await autoscaled(cluster, replicas=2)
    await hpa_scales(cluster, 3, "5")

    await cluster.patch(k8s.INFERENCESERVICES, SVC, {"spec": {"autoscaling": None}})
    await cluster.reconcile(IS, SVC)

    assert await cluster.get(k8s.HPAS, PREDICTOR) is None
    assert await replicas_of(cluster) == 2
    isvc = await cluster.obj(IS, SVC)
    assert "autoscaler" not in isvc["status"]
    assert isvc["status"]["desiredReplicas"] == 2
    assert "AutoscalingDisabled" in await cluster.reasons(SVC)


async def test_a_changed_target_patches_the_autoscaler_only(cluster: Cluster) -> None:
    await autoscaled(cluster)
    await hpa_scales(cluster, 2, "2")
    deployment = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert deployment is not None

    changed = {**AUTOSCALING, "maxReplicas": 6, "targetCpuUtilizationPercent": 60}
    del changed["targetRequestsPerSecond"]
    await cluster.patch(
        k8s.INFERENCESERVICES,
        SVC,
        {"spec": {"autoscaling": {**changed, "targetRequestsPerSecond": None}}},
    )
    await cluster.reconcile(IS, SVC)

    hpa = await cluster.get(k8s.HPAS, PREDICTOR)
    assert hpa is not None
    assert hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    after = await cluster.get(k8s.DEPLOYMENTS, PREDICTOR)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]


async def test_a_deleted_autoscaler_is_put_back(cluster: Cluster) -> None:
    await autoscaled(cluster)
    await cluster.delete(k8s.HPAS, PREDICTOR)
    await cluster.reconcile(IS, SVC)
    assert await cluster.get(k8s.HPAS, PREDICTOR) is not None


async def test_scale_to_zero_is_refused_with_a_pointer_to_keda_and_knative(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    await cluster.create(
        inferenceservice(SVC, "iris", autoscaling={**AUTOSCALING, "minReplicas": 0})
    )
    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert state(isvc, "Ready") == ("False", "InvalidSpec")
    assert await cluster.get(k8s.DEPLOYMENTS, PREDICTOR) is None
    assert await cluster.get(k8s.HPAS, PREDICTOR) is None
    (event,) = [e for e in await cluster.events(SVC) if e[1] == "InvalidSpec"]
    assert event[0] == "Warning"
    assert "KEDA or Knative" in event[2]
