"""The InferenceService plan, branch by branch: pure, from observed objects to the status,
children, marks, retraining and Events one reconcile writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlops_operator.api.inferenceservice import InferenceServiceStatus
from mlops_operator.kube.names import DEGRADED_ANNOTATION, spec_hash
from mlops_operator.monitoring.aggregate import Measurement
from mlops_operator.monitoring.judge import Measured
from mlops_operator.serving.plan import Observed, Plan, plan
from mlops_operator.settings import Settings

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings(runtime_image="runtime:test", s3_credentials_secret=None)
DIGEST = "sha256:" + "a" * 64


def version(
    n: int,
    *,
    phase: str = "Ready",
    gates: bool = True,
    degraded: str | None = None,
    source: str | None = None,
    accuracy: float = 0.9,
    task: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": f"m-v{n}", "resourceVersion": str(n)}
    if degraded:
        meta["annotations"] = {DEGRADED_ANNOTATION: degraded}
    conditions = [
        {"type": "ArtifactVerified", "status": "True", "reason": "DigestMatch"},
        {"type": "GatesPassed", "status": "True" if gates else "False", "reason": "x"},
    ]
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": meta,
        "spec": {
            "model": "m",
            "version": n,
            "artifact": {"uri": f"s3://bucket/models/ns/m/{n}/", "digest": DIGEST},
            "metrics": {"accuracy": accuracy},
            "source": {"trainingJob": source} if source else {},
            **({"task": task} if task else {}),
        },
        "status": {
            "phase": phase,
            "conditions": [{**c, "lastTransitionTime": "2026-03-01T00:00:00Z"} for c in conditions],
        },
    }


def service(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"namespace": "ns", "name": "svc", "uid": "u1", "generation": 1},
        "spec": {"model": "m", **spec},
        "status": status or {},
    }


MONITORED = {
    "monitoring": {
        "intervalSeconds": 10,
        "metrics": [
            {"name": "acc", "builtin": "accuracy", "min": 0.8, "minSamples": 10, "failureLimit": 1}
        ],
    }
}


def ready_deployment(result: Plan) -> dict[str, Any]:
    """The Deployment the plan asked for, as a ready cluster would report it."""
    assert result.deployment is not None
    return {
        "metadata": {
            "name": "svc-predictor",
            "generation": 1,
            "annotations": {"mlops.dev/spec-hash": spec_hash(result.deployment)},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
        },
    }


def run(
    obj: dict[str, Any],
    versions: list[dict[str, Any]],
    *,
    deployment: dict[str, Any] | None = None,
    trainingjobs: dict[str, dict[str, Any]] | None = None,
    measured: Measured | None = None,
    now: dt.datetime = T0,
) -> Plan:
    return plan(
        Observed(
            obj=obj,
            versions=versions,
            trainingjobs=trainingjobs or {},
            deployment=deployment,
            measured=measured,
        ),
        SETTINGS,
        now,
    )


def settle(
    obj: dict[str, Any], versions: list[dict[str, Any]], **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plan twice (the second time with the Deployment ready): the service as it settles,
    and its ready Deployment."""
    first = run(obj, versions, **kw)
    obj = {**obj, "status": first.status.to_wire()}
    deployment = ready_deployment(first)
    second = run(obj, versions, deployment=deployment, **kw)
    return {**obj, "status": second.status.to_wire()}, deployment


def cond(status: InferenceServiceStatus | dict[str, Any], type: str) -> dict[str, Any]:
    wire = status.to_wire() if isinstance(status, InferenceServiceStatus) else status
    return next((c for c in wire.get("conditions") or [] if c["type"] == type), {})


def breach(version_served: int, at: dt.datetime = T0) -> Measured:
    return Measured(time=at, version=version_served, values={"acc": Measurement(0.1, 50, "")})


def test_no_servable_version_waits_pending_with_a_warning_once() -> None:
    result = run(service(), [version(1, phase="Failed", gates=False)])
    assert result.status.phase == "Pending"
    assert cond(result.status, "Ready")["reason"] == "NoServableVersion"
    assert result.deployment is None
    assert [e[1] for e in result.events] == ["NoServableVersion"]
    again = run(service(result.status.to_wire()), [version(1, phase="Failed", gates=False)])
    assert again.events == []


def test_the_latest_version_serves_and_becomes_ready_when_its_pods_are() -> None:
    first = run(service(), [version(1), version(2)])
    assert first.deployment is not None and first.service is not None
    assert first.status.current_version == 2
    assert first.status.phase == "Pending"
    assert [(h.version, h.reason) for h in first.status.history] == [(2, "Initial")]
    obj, dep = settle(service(), [version(1), version(2)])
    assert obj["status"]["phase"] == "Ready"
    assert cond(obj["status"], "Progressing")["reason"] == "RolledOut"


def test_an_invalid_cron_is_invalid_spec_and_builds_nothing() -> None:
    result = run(service(retrain={"schedule": "every day"}), [version(1)])
    assert not result.valid
    assert result.status.phase == "Failed"
    assert cond(result.status, "Ready")["reason"] == "InvalidSpec"
    assert "spec.retrain.schedule" in cond(result.status, "Ready")["message"]
    assert result.deployment is None


def test_a_rejected_child_is_not_retried_until_the_spec_changes() -> None:
    status = {
        "observedGeneration": 1,
        "phase": "Failed",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "InvalidSpec",
                "message": "the API server rejected Deployment svc-predictor: ...",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-03-01T00:00:00Z",
            }
        ],
    }
    assert run(service(status), [version(1)]).deployment is None
    changed = service(status)
    changed["metadata"]["generation"] = 2
    assert run(changed, [version(1)]).deployment is not None


def test_a_breach_rolls_back_to_the_newest_healthy_version_and_says_which() -> None:
    versions = [version(1), version(2), version(3)]
    obj, dep = settle(service(**MONITORED), versions)
    assert obj["status"]["currentVersion"] == 3
    result = run(obj, versions, deployment=dep, measured=breach(3, T0 + dt.timedelta(minutes=1)))
    assert set(result.degrade) == {"m-v3"}
    assert (
        result.status.current_version == 2
    )  # the newest healthy one, which is what `latest` means
    assert result.status.history[-1].reason == "RolledBack"
    assert "from version 3 to 2" in result.status.history[-1].message
    assert cond(result.status, "RolledBack")["status"] == "True"
    assert cond(result.status, "Degraded")["status"] == "False"
    assert result.rolled_back


def test_a_pinned_service_is_not_rolled_back_and_says_to_change_the_pin() -> None:
    versions = [version(1), version(2)]
    obj, dep = settle(service(version=2, **MONITORED), versions)
    result = run(obj, versions, deployment=dep, measured=breach(2, T0 + dt.timedelta(minutes=1)))
    assert result.degrade == {}
    assert result.status.current_version == 2
    assert cond(result.status, "RolledBack")["reason"] == "PinnedVersion"
    assert cond(result.status, "Degraded")["status"] == "True"
    assert result.status.phase == "Degraded"


def test_alert_only_changes_nothing_but_status_and_an_event() -> None:
    versions = [version(1), version(2)]
    obj, dep = settle(service(onDegradation="Alert", **MONITORED), versions)
    result = run(obj, versions, deployment=dep, measured=breach(2, T0 + dt.timedelta(minutes=1)))
    assert result.degrade == {} and result.trainingjob is None
    assert cond(result.status, "RolledBack")["reason"] == "AlertOnly"
    assert result.status.phase == "Degraded"
    assert "MetricsBreached" in [e[1] for e in result.events]


def test_no_healthy_version_keeps_serving_the_degraded_one_and_says_so() -> None:
    versions = [version(1)]
    obj, dep = settle(service(**MONITORED), versions)
    result = run(obj, versions, deployment=dep, measured=breach(1, T0 + dt.timedelta(minutes=1)))
    assert set(result.degrade) == {"m-v1"}
    assert result.deployment is None  # the running Deployment is left as it is
    assert result.status.current_version == 1
    assert cond(result.status, "RolledBack")["reason"] == "NoHealthyVersion"
    assert result.status.phase == "Degraded"


def test_a_measurement_is_judged_once() -> None:
    versions = [version(1), version(2)]
    obj, dep = settle(service(onDegradation="Alert", **MONITORED), versions)
    measured = breach(2, T0 + dt.timedelta(minutes=1))
    first = run(obj, versions, deployment=dep, measured=measured)
    obj = {**obj, "status": first.status.to_wire()}
    second = run(obj, versions, deployment=dep, measured=measured)
    assert second.status.last_evaluation == first.status.last_evaluation
    assert second.status.last_evaluation is not None
    assert second.status.last_evaluation.metrics[0].consecutive_breaches == 1


def retrain_spec() -> dict[str, Any]:
    template = {
        "model": "m",
        "dataset": {"uri": "s3://data/x.csv", "target": "y"},
        "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
    }
    return {
        "onDegradation": "Retrain",
        "retrain": {"template": template, "cooldownSeconds": 0, "maxPerDay": 5},
        **MONITORED,
    }


def test_second_and_third_degradations_each_start_one_retraining() -> None:
    versions = [version(1)]
    obj, dep = settle(service(**retrain_spec()), versions)
    names = []
    for cycle in (1, 2, 3):
        now = T0 + dt.timedelta(hours=cycle)
        served = obj["status"]["currentVersion"]
        result = run(obj, versions, deployment=dep, measured=breach(served, now), now=now)
        assert result.trainingjob is not None, cycle
        names.append(result.trainingjob["metadata"]["name"])
        obj = {**obj, "status": result.status.to_wire()}
        # While it runs, a further breach starts nothing.
        tj_name = names[-1]
        running = {tj_name: {"metadata": {"name": tj_name}, "status": {"phase": "Running"}}}
        busy = run(
            obj,
            versions,
            deployment=dep,
            trainingjobs=running,
            measured=breach(served, now + dt.timedelta(seconds=30)),
            now=now,
        )
        assert busy.trainingjob is None
        new = version(cycle + 1, source=tj_name)
        versions = [*versions, new]
        finished = {
            tj_name: {
                "metadata": {"name": tj_name},
                "spec": {},
                "status": {"phase": "Succeeded", "modelVersion": new["metadata"]["name"]},
            }
        }
        obj = {**obj, "status": busy.status.to_wire()}
        promoted = run(
            obj, versions, deployment=dep, trainingjobs=finished, now=now + dt.timedelta(minutes=1)
        )
        assert promoted.status.current_version == cycle + 1
        assert promoted.status.history[-1].reason == "Promoted"
        assert "active" not in promoted.status.to_wire()["retraining"]
        assert cond(promoted.status, "Retraining")["reason"] == "Promoted"
        obj = {**obj, "status": promoted.status.to_wire()}
    assert names == ["svc-retrain-1", "svc-retrain-2", "svc-retrain-3"]


def test_retraining_is_refused_within_the_cooldown_with_one_event() -> None:
    spec = retrain_spec()
    spec["retrain"]["cooldownSeconds"] = 3600
    versions = [version(1)]
    obj, dep = settle(service(**spec), versions)
    started = run(obj, versions, deployment=dep, measured=breach(1, T0))
    failed = {
        "svc-retrain-1": {
            "metadata": {"name": "svc-retrain-1"},
            "status": {"phase": "Failed", "failureReason": "boom"},
        }
    }
    obj = {**obj, "status": started.status.to_wire()}
    later = T0 + dt.timedelta(minutes=5)
    refused = run(
        obj, versions, deployment=dep, trainingjobs=failed, measured=breach(1, later), now=later
    )
    assert refused.trainingjob is None
    assert cond(refused.status, "Retraining")["reason"] == "RetrainingRefused"
    assert "Cooling down" in cond(refused.status, "Retraining")["message"]
    reasons = [e[1] for e in refused.events]
    assert "RetrainingFailed" in reasons and reasons.count("RetrainingRefused") == 1


def test_a_retrained_version_that_does_not_beat_the_served_one_is_not_promoted() -> None:
    versions = [version(1, accuracy=0.95)]
    obj, dep = settle(service(promotion={"mustBeat": "accuracy"}), versions)
    versions = [*versions, version(2, accuracy=0.90)]
    result = run(obj, versions)
    assert result.status.current_version == 1
    assert [r.version for r in result.status.rejected_versions] == [2]
    assert cond(result.status, "Retraining")["reason"] == "NotPromoted"


def test_rolled_back_clears_when_a_newer_healthy_version_is_promoted() -> None:
    versions = [version(1), version(2)]
    obj, dep = settle(service(**MONITORED), versions)
    rolled = run(obj, versions, deployment=dep, measured=breach(2, T0 + dt.timedelta(minutes=1)))
    assert cond(rolled.status, "RolledBack")["status"] == "True"
    versions = [version(1), version(2, degraded="breached"), version(3)]
    obj = {**obj, "status": rolled.status.to_wire()}
    newer = run(obj, versions)
    assert newer.status.current_version == 3
    assert cond(newer.status, "RolledBack")["status"] == "False"


def test_a_pinned_version_that_missed_its_gates_serves_with_a_warning() -> None:
    versions = [version(1, phase="Failed", gates=False)]
    result = run(service(version=1), versions)
    assert result.status.current_version == 1
    assert cond(result.status, "GatesPassed")["reason"] == "GatesNotPassed"
    assert "GatesNotPassed" in [e[1] for e in result.events]


def test_a_scheduled_retraining_starts_when_due_and_plans_the_next() -> None:
    spec = retrain_spec()
    spec["retrain"]["schedule"] = "0 3 * * *"
    obj, dep = settle(service(**spec), [version(1)])
    due = dt.datetime.fromisoformat(obj["status"]["retraining"]["nextScheduled"])
    assert due == dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)
    result = run(obj, [version(1)], deployment=dep, now=due)
    assert result.trainingjob is not None
    assert result.status.retraining.next_scheduled == due + dt.timedelta(days=1)
    assert "scheduled" in (result.status.retraining.last_result or "")


def test_a_retraining_checks_its_data_against_the_version_it_replaces() -> None:
    versions = [version(1)]
    obj, dep = settle(service(**retrain_spec()), versions)
    now = T0 + dt.timedelta(hours=1)
    result = run(obj, versions, deployment=dep, measured=breach(1, now), now=now)
    assert result.trainingjob is not None
    assert result.trainingjob["spec"]["validation"]["against"] == "m-v1"


def test_a_retraining_template_that_names_its_reference_keeps_it() -> None:
    spec = retrain_spec()
    spec["retrain"]["template"]["validation"] = {"against": "latest"}
    versions = [version(1)]
    obj, dep = settle(service(**spec), versions)
    now = T0 + dt.timedelta(hours=1)
    result = run(obj, versions, deployment=dep, measured=breach(1, now), now=now)
    assert result.trainingjob is not None
    assert result.trainingjob["spec"]["validation"]["against"] == "latest"
