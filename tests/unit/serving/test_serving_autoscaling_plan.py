"""The InferenceService plan with ``spec.autoscaling``: the autoscaler child planned, deleted
when autoscaling goes, ``replicas`` ignored meanwhile, and the autoscaler's numbers reported."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlops_operator.kube.names import spec_hash
from mlops_operator.serving.plan import Observed, Plan, plan
from mlops_operator.settings import Settings

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings(runtime_image="runtime:test", s3_credentials_secret=None)
DIGEST = "sha256:" + "a" * 64
AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetRequestsPerSecond": 2}

VERSION = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"namespace": "ns", "name": "m-v1", "resourceVersion": "1"},
    "spec": {
        "model": "m",
        "version": 1,
        "artifact": {"uri": "s3://bucket/models/ns/m/1/", "digest": DIGEST},
    },
    "status": {
        "phase": "Ready",
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": "x",
                "lastTransitionTime": "2026-03-01T00:00:00Z",
            }
            for t in ("ArtifactVerified", "GatesPassed")
        ],
    },
}


def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"namespace": "ns", "name": "svc", "uid": "u1", "generation": 1},
        "spec": {"model": "m", **spec},
        "status": {},
    }


def deployment_of(result: Plan, *, replicas: int, ready: int) -> dict[str, Any]:
    """The planned Deployment as the cluster reports it, ``ready`` of ``replicas`` pods."""
    assert result.deployment is not None
    return {
        "metadata": {
            "name": "svc-predictor",
            "generation": 1,
            "annotations": {"mlops.dev/spec-hash": spec_hash(result.deployment)},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def hpa(desired: int, current: int, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "svc-predictor", "namespace": "ns"},
        "status": {"desiredReplicas": desired, "currentReplicas": current, **status},
    }


def run(
    obj: dict[str, Any],
    *,
    deployment: dict[str, Any] | None = None,
    autoscaler: dict[str, Any] | None = None,
) -> Plan:
    observed = Observed(
        obj=obj,
        versions=[VERSION],
        trainingjobs={},
        deployment=deployment,
        autoscaler=autoscaler,
    )
    return plan(observed, SETTINGS, T0)


def cond(result: Plan, type: str) -> dict[str, Any]:
    wire = result.status.to_wire()
    return next(c for c in wire["conditions"] if c["type"] == type)


def test_autoscaling_plans_the_autoscaler_and_a_deployment_without_replicas() -> None:
    result = run(service(replicas=5, autoscaling=AUTOSCALING))
    assert result.autoscaler is not None
    assert result.autoscaler["spec"]["maxReplicas"] == 3
    assert result.deployment is not None and "replicas" not in result.deployment["spec"]
    assert not result.delete_autoscaler
    assert ("Normal", "AutoscalingEnabled") in [(t, r) for t, r, _ in result.events]
    enabled = next(m for _, r, m in result.events if r == "AutoscalingEnabled")
    assert enabled == "Autoscaling between 1 and 3 replicas on 2 requests/s per replica."


def test_replicas_is_ignored_while_the_autoscaler_decides() -> None:
    obj = service(replicas=5, autoscaling=AUTOSCALING)
    first = run(obj)
    scaled = hpa(3, 3, currentMetrics=[_rps("4500m")])
    result = run(obj, deployment=deployment_of(first, replicas=3, ready=3), autoscaler=scaled)
    status = result.status.to_wire()
    assert status["desiredReplicas"] == 3
    assert status["readyReplicas"] == 3
    assert status["autoscaler"] == {
        "currentReplicas": 3,
        "desiredReplicas": 3,
        "currentMetric": "4.5 requests/s",
    }
    assert cond(result, "Progressing")["reason"] == "RolledOut"
    assert cond(result, "Ready")["message"] == (
        "3 of 3 replica(s) ready at http://svc-predictor.ns.svc.cluster.local "
        "(autoscaled between 1 and 3)."
    )
    # The same template: nothing about the Deployment changed, so nothing is written.
    assert result.deployment is not None
    assert spec_hash(result.deployment) == spec_hash(first.deployment or {})


def test_a_scale_out_in_progress_is_reported_as_rolling_out() -> None:
    obj = service(autoscaling=AUTOSCALING)
    first = run(obj)
    result = run(obj, deployment=deployment_of(first, replicas=3, ready=1), autoscaler=hpa(3, 1))
    assert result.status.desired_replicas == 3
    assert cond(result, "Progressing")["message"] == "Rolling out version 1: 1/3 ready."
    assert result.status.phase == "Ready"


def test_before_the_autoscalers_first_decision_the_running_pods_within_bounds_are_wanted() -> None:
    obj = service(autoscaling={**AUTOSCALING, "minReplicas": 2})
    first = run(obj)
    result = run(obj, deployment=deployment_of(first, replicas=1, ready=1), autoscaler=hpa(0, 0))
    assert result.status.desired_replicas == 2


def test_an_autoscaler_that_cannot_scale_says_why() -> None:
    obj = service(autoscaling=AUTOSCALING)
    stuck = hpa(
        1,
        1,
        conditions=[
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {
                "type": "ScalingActive",
                "status": "False",
                "reason": "FailedGetPodsMetric",
                "message": "unable to get metric mlops_requests_per_second",
            },
        ],
    )
    result = run(obj, autoscaler=stuck)
    assert result.status.autoscaler is not None
    assert result.status.autoscaler.message == (
        "FailedGetPodsMetric: unable to get metric mlops_requests_per_second"
    )


def test_removing_autoscaling_deletes_the_autoscaler_and_restores_replicas() -> None:
    result = run(service(replicas=2), autoscaler=hpa(3, 3))
    assert result.delete_autoscaler
    assert result.autoscaler is None
    assert result.deployment is not None and result.deployment["spec"]["replicas"] == 2
    assert result.status.autoscaler is None and result.status.desired_replicas == 2
    disabled = next(m for _, r, m in result.events if r == "AutoscalingDisabled")
    assert disabled == "Autoscaling removed: the predictor runs spec.replicas (2)."


def test_without_autoscaling_nothing_is_deleted_and_replicas_are_wanted() -> None:
    result = run(service(replicas=2))
    assert not result.delete_autoscaler and result.autoscaler is None
    assert result.status.desired_replicas == 2


def test_changing_the_target_changes_the_autoscaler_not_the_deployment() -> None:
    before = run(service(autoscaling=AUTOSCALING))
    after = run(service(autoscaling={**AUTOSCALING, "targetRequestsPerSecond": 5}))
    assert before.autoscaler is not None and after.autoscaler is not None
    assert spec_hash(before.autoscaler) != spec_hash(after.autoscaler)
    assert spec_hash(before.deployment or {}) == spec_hash(after.deployment or {})


def test_scale_to_zero_is_an_invalid_spec_that_names_keda_and_knative() -> None:
    result = run(service(autoscaling={**AUTOSCALING, "minReplicas": 0}))
    assert not result.valid
    assert result.autoscaler is None and result.deployment is None
    ready = cond(result, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "use KEDA or Knative for scale-to-zero" in ready["message"]
    assert "spec.autoscaling" in ready["message"]


def _rps(value: str) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": "mlops_requests_per_second"},
            "current": {"averageValue": value},
        },
    }
