"""The ModelVersion reconcile, branch by branch: digest, gates, degradation, servedBy."""

from __future__ import annotations

from mlops_operator.kube import client as k8s
from mlops_operator.kube.names import DEGRADED_ANNOTATION
from tests.controllers.conftest import Cluster, condition, state
from tests.support.factories import digest_of, inferenceservice, modelversion

MV = "ModelVersion"


async def test_a_matching_digest_makes_the_version_ready(cluster: Cluster) -> None:
    mv = await cluster.version("iris", 1)

    assert mv["status"]["phase"] == "Ready"
    assert state(mv, "ArtifactVerified") == ("True", "DigestMatch")
    assert state(mv, "GatesPassed") == ("True", "NoGates")
    assert state(mv, "Ready") == ("True", "VersionReady")
    assert mv["status"]["mainMetric"] == "accuracy=0.9500"
    assert await cluster.events("iris-v1") == [
        ("Normal", "VersionReady", "Version 1 of iris is verified and servable.")
    ]


async def test_a_digest_mismatch_fails_the_version_for_good(cluster: Cluster) -> None:
    uri = cluster.version_uri("iris", 1)
    cluster.put(f"{uri}model.joblib", b"what is stored")
    await cluster.create(modelversion("iris", 1, uri, digest_of(b"what was registered")))

    await cluster.reconcile(MV, "iris-v1")
    await cluster.reconcile(MV, "iris-v1")

    mv = await cluster.obj(MV, "iris-v1")
    assert mv["status"]["phase"] == "Failed"
    assert state(mv, "ArtifactVerified") == ("False", "DigestMismatch")
    assert state(mv, "Ready") == ("False", "DigestMismatch")
    assert digest_of(b"what is stored") in condition(mv, "Ready")["message"]
    assert await cluster.reasons("iris-v1") == ["DigestMismatch"]


async def test_a_missing_artifact_keeps_the_version_pending_and_retries(cluster: Cluster) -> None:
    uri = cluster.version_uri("iris", 1)
    await cluster.create(modelversion("iris", 1, uri, digest_of(b"never uploaded")))

    assert await cluster.reconcile(MV, "iris-v1") == 60.0

    mv = await cluster.obj(MV, "iris-v1")
    assert mv["status"]["phase"] == "Pending"
    assert state(mv, "ArtifactVerified") == ("False", "ArtifactNotFound")


async def test_failed_gates_fail_the_version(cluster: Cluster) -> None:
    mv = await cluster.version(
        "iris", 1, metrics={"accuracy": 0.7}, gates=[{"metric": "accuracy", "min": 0.9}]
    )

    assert mv["status"]["phase"] == "Failed"
    assert state(mv, "ArtifactVerified") == ("True", "DigestMatch")
    assert state(mv, "GatesPassed") == ("False", "GateFailed")
    assert state(mv, "Ready") == ("False", "GateFailed")
    assert "accuracy 0.7 < 0.9" in condition(mv, "GatesPassed")["message"]
    assert [r["passed"] for r in mv["status"]["gateResults"]] == [False]


async def test_the_degraded_annotation_degrades_the_version_until_it_is_removed(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    why = "Breached on svc: online-accuracy 0.5 < min 0.8"
    await cluster.patch(
        k8s.MODELVERSIONS, "iris-v1", {"metadata": {"annotations": {DEGRADED_ANNOTATION: why}}}
    )

    await cluster.reconcile(MV, "iris-v1")

    mv = await cluster.obj(MV, "iris-v1")
    assert mv["status"]["phase"] == "Degraded"
    assert state(mv, "Degraded") == ("True", "MetricsBreached")
    assert condition(mv, "Degraded")["message"] == why
    assert state(mv, "Ready") == ("False", "MetricsBreached")

    await cluster.patch(
        k8s.MODELVERSIONS, "iris-v1", {"metadata": {"annotations": {DEGRADED_ANNOTATION: None}}}
    )
    await cluster.reconcile(MV, "iris-v1")

    mv = await cluster.obj(MV, "iris-v1")
    assert mv["status"]["phase"] == "Ready"
    assert state(mv, "Ready") == ("True", "VersionReady")
    assert state(mv, "Degraded") == ("False", "DegradationCleared")
    assert await cluster.reasons("iris-v1") == ["VersionReady", "MetricsBreached", "VersionReady"]


async def test_served_by_follows_the_services_that_exist(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    for name in ("a", "b"):
        await cluster.create(inferenceservice(name, "iris"))
        await cluster.reconcile("InferenceService", name)

    await cluster.reconcile(MV, "iris-v1")
    assert (await cluster.obj(MV, "iris-v1"))["status"]["servedBy"] == ["a", "b"]

    # Deleted while the operator was down: nothing reconciled in between.
    await cluster.delete(k8s.INFERENCESERVICES, "a")
    await cluster.reconcile(MV, "iris-v1")

    assert (await cluster.obj(MV, "iris-v1"))["status"]["servedBy"] == ["b"]
