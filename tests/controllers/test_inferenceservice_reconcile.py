"""The InferenceService reconcile, branch by branch: resolve, promote, roll back, roll out,
judge the monitor's measurements and remediate. A measurement is handed over the way the
monitor does it: ``ctx.measured[(namespace, name)]``, judged by the next reconcile."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import attrs
import pytest

from mlops_operator.kube import client as k8s
from mlops_operator.kube.names import DEGRADED_ANNOTATION
from mlops_operator.monitoring.aggregate import Measurement
from mlops_operator.monitoring.judge import Measured
from mlops_sandbox.apiserver import Fault
from tests.controllers.conftest import Cluster, condition, state
from tests.support.factories import accuracy_policy, inferenceservice, trainingjob

IS = "InferenceService"
SVC = "svc"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_ticks = itertools.count(1)


def monitored(**spec: Any) -> dict[str, Any]:
    """Spec fields of a service judged on online accuracy (min 0.8, one breach degrades)."""
    return {"monitoring": {"intervalSeconds": 30, "metrics": [accuracy_policy()]}, **spec}


async def serve(cluster: Cluster, name: str = SVC, **spec: Any) -> dict[str, Any]:
    """Create a service of ``iris``, reconcile, mark its predictor ready, reconcile: the
    service after it."""
    await cluster.create(inferenceservice(name, "iris", **spec))
    return await settle(cluster, name)


async def settle(cluster: Cluster, name: str = SVC) -> dict[str, Any]:
    """Reconcile, mark the predictor ready (its current template), reconcile again."""
    await cluster.reconcile(IS, name)
    if await cluster.get(k8s.DEPLOYMENTS, f"{name}-predictor") is not None:
        await cluster.deployment_ready(f"{name}-predictor")
    await cluster.reconcile(IS, name)
    return await cluster.obj(IS, name)


async def measure(
    cluster: Cluster, version: int, accuracy: float, name: str = SVC
) -> dict[str, Any]:
    """Hand the reconcile a measurement of ``version``, newer than any before; reconcile."""
    cluster.ctx.measured[(cluster.namespace, name)] = Measured(
        time=T0 + dt.timedelta(minutes=next(_ticks)),
        version=version,
        values={"online-accuracy": Measurement(value=accuracy, samples=100, message="")},
    )
    await cluster.reconcile(IS, name)
    return await cluster.obj(IS, name)


def history(isvc: dict[str, Any]) -> list[tuple[int, str]]:
    return [(h["version"], h["reason"]) for h in isvc["status"]["history"]]


async def annotation(cluster: Cluster, mv: str) -> str | None:
    obj = await cluster.obj("ModelVersion", mv)
    value: str | None = (obj["metadata"].get("annotations") or {}).get(DEGRADED_ANNOTATION)
    return value


async def trainingjobs(cluster: Cluster) -> list[str]:
    found = await cluster.user.list(k8s.TRAININGJOBS, cluster.namespace)
    return sorted(t["metadata"]["name"] for t in found)


def retrain(cluster: Cluster, **fields: Any) -> dict[str, Any]:
    """A ``retrain`` section whose template trains ``iris`` on the namespace's dataset."""
    template = trainingjob("unused", "iris", cluster.dataset())["spec"]
    return {"template": template, "cooldownSeconds": 0, "maxPerDay": 10, **fields}


# --- resolving and rolling out ---------------------------------------------------------------


async def test_without_a_servable_version_the_service_waits_then_serves_the_latest(
    cluster: Cluster,
) -> None:
    await cluster.create(inferenceservice(SVC, "iris"))
    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["phase"] == "Pending"
    assert state(isvc, "Ready") == ("False", "NoServableVersion")
    assert await cluster.get(k8s.DEPLOYMENTS, "svc-predictor") is None

    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["currentVersion"] == 2
    assert history(isvc) == [(2, "Initial")]
    assert state(isvc, "Ready") == ("False", "PredictorNotReady")
    assert state(isvc, "Progressing") == ("True", "RollingOut")
    assert await cluster.get(k8s.SERVICES, "svc-predictor") is not None

    await cluster.deployment_ready("svc-predictor")
    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["phase"] == "Ready"
    assert state(isvc, "Ready") == ("True", "PredictorReady")
    assert state(isvc, "Progressing") == ("False", "RolledOut")
    assert await cluster.reasons(SVC) == ["NoServableVersion", "VersionChanged"]


async def test_a_pinned_version_that_missed_its_gates_serves_with_gates_not_passed(
    cluster: Cluster,
) -> None:
    await cluster.version(
        "iris", 1, metrics={"accuracy": 0.7}, gates=[{"metric": "accuracy", "min": 0.9}]
    )

    isvc = await serve(cluster, version=1)

    assert isvc["status"]["currentVersion"] == 1
    assert isvc["status"]["phase"] == "Ready"
    assert state(isvc, "GatesPassed") == ("False", "GatesNotPassed")
    assert "GatesNotPassed" in await cluster.reasons(SVC)


async def test_a_newer_version_is_served_as_new_latest(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await serve(cluster)
    await cluster.version("iris", 2)

    isvc = await settle(cluster)

    assert history(isvc) == [(1, "Initial"), (2, "NewLatest")]
    assert isvc["status"]["phase"] == "Ready"
    deployment = await cluster.get(k8s.DEPLOYMENTS, "svc-predictor")
    assert deployment is not None
    assert deployment["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "2"


# --- degradation ----------------------------------------------------------------------------


async def test_a_pinned_degraded_version_is_not_rolled_back(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored(version=2, onDegradation="Rollback"))

    isvc = await measure(cluster, 2, accuracy=0.5)

    assert isvc["status"]["currentVersion"] == 2
    assert isvc["status"]["phase"] == "Degraded"
    assert state(isvc, "Degraded") == ("True", "MetricsBreached")
    assert state(isvc, "RolledBack") == ("False", "PinnedVersion")
    assert await annotation(cluster, "iris-v2") is None  # the operator never edits your pin


async def test_alert_only_keeps_serving_the_degraded_version(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored(onDegradation="Alert"))

    isvc = await measure(cluster, 2, accuracy=0.5)

    assert isvc["status"]["currentVersion"] == 2
    assert isvc["status"]["phase"] == "Degraded"
    assert state(isvc, "RolledBack") == ("False", "AlertOnly")
    assert await annotation(cluster, "iris-v2") is None
    assert "online-accuracy 0.5 < min 0.8" in condition(isvc, "Degraded")["message"]


async def test_rollback_goes_to_the_newest_healthy_version_not_the_previous_one(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored(version=2))
    await cluster.patch(k8s.INFERENCESERVICES, SVC, {"spec": {"version": 1}})
    await settle(cluster)
    await cluster.version("iris", 3)
    await cluster.patch(k8s.INFERENCESERVICES, SVC, {"spec": {"version": "latest"}})
    assert history(await settle(cluster)) == [(2, "Initial"), (1, "Pinned"), (3, "NewLatest")]

    isvc = await measure(cluster, 3, accuracy=0.5)

    assert isvc["status"]["currentVersion"] == 2
    assert history(isvc)[-1] == (2, "RolledBack")
    assert state(isvc, "RolledBack") == ("True", "RolledBack")
    message = condition(isvc, "RolledBack")["message"]
    assert message.startswith("Rolled back from version 3 to 2: ")
    assert "online-accuracy 0.5 < min 0.8" in message
    assert (await annotation(cluster, "iris-v3") or "").startswith("Breached on svc: ")
    events = await cluster.events(SVC)
    assert ("Warning", "RolledBack", message) in events

    await cluster.reconcile("ModelVersion", "iris-v3")
    assert (await cluster.obj("ModelVersion", "iris-v3"))["status"]["phase"] == "Degraded"


async def test_with_no_healthy_version_the_degraded_one_keeps_serving(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored())

    isvc = await measure(cluster, 1, accuracy=0.5)

    assert isvc["status"]["currentVersion"] == 1
    assert isvc["status"]["phase"] == "Degraded"
    assert state(isvc, "RolledBack") == ("False", "NoHealthyVersion")
    assert state(isvc, "Progressing") == ("False", "NoServableVersion")
    assert await annotation(cluster, "iris-v1") is not None


async def test_the_rolled_back_condition_clears_when_a_newer_healthy_version_is_promoted(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored())
    isvc = await measure(cluster, 2, accuracy=0.5)
    assert state(isvc, "RolledBack") == ("True", "RolledBack")

    await cluster.version("iris", 3)
    isvc = await settle(cluster)

    assert isvc["status"]["currentVersion"] == 3
    assert history(isvc)[-1] == (3, "NewLatest")
    assert state(isvc, "RolledBack") == ("False", "NewLatest")
    assert state(isvc, "Degraded") == ("False", "MetricsHealthy")
    assert isvc["status"]["phase"] == "Ready"


# --- retraining -----------------------------------------------------------------------------


async def test_a_retrained_version_that_passes_its_gates_is_promoted(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="Retrain", retrain=retrain(cluster)))

    isvc = await measure(cluster, 1, accuracy=0.5)
    assert isvc["status"]["retraining"]["active"] == "svc-retrain-1"
    assert state(isvc, "Retraining") == ("True", "RetrainingStarted")
    tj = await cluster.obj("TrainingJob", "svc-retrain-1")
    assert tj["metadata"]["ownerReferences"][0]["name"] == SVC

    await cluster.train("svc-retrain-1", {"accuracy": 0.97})
    await cluster.reconcile("ModelVersion", "iris-v2")
    isvc = await settle(cluster)

    assert isvc["status"]["currentVersion"] == 2
    assert history(isvc)[-1] == (2, "Promoted")
    assert "retraining" not in isvc["status"] or not isvc["status"]["retraining"].get("active")
    assert state(isvc, "Retraining") == ("False", "Promoted")
    assert ("Normal", "Promoted", "Promoted retrained version 2: it passed its gates.") in (
        await cluster.events(SVC)
    )


async def test_a_restart_while_a_retraining_runs_starts_no_second_one(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="Retrain", retrain=retrain(cluster)))
    await measure(cluster, 1, accuracy=0.5)
    await cluster.restart()

    isvc = await measure(cluster, 1, accuracy=0.4)

    assert isvc["status"]["retraining"]["active"] == "svc-retrain-1"
    assert isvc["status"]["retraining"]["count"] == 1
    names = [
        t["metadata"]["name"] for t in await cluster.user.list(k8s.TRAININGJOBS, cluster.namespace)
    ]
    assert names == ["svc-retrain-1"]


async def test_a_second_and_a_third_retraining_follow_each_promotion(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="Retrain", retrain=retrain(cluster)))

    for n in (1, 2):
        await measure(cluster, n, accuracy=0.5)
        await cluster.train(f"svc-retrain-{n}", {"accuracy": 0.97})
        await cluster.reconcile("ModelVersion", f"iris-v{n + 1}")
        isvc = await settle(cluster)
        assert isvc["status"]["currentVersion"] == n + 1
        assert not isvc["status"]["retraining"].get("active")

    isvc = await measure(cluster, 3, accuracy=0.5)

    assert isvc["status"]["retraining"]["active"] == "svc-retrain-3"
    assert isvc["status"]["retraining"]["count"] == 3
    assert history(isvc) == [(1, "Initial"), (2, "Promoted"), (3, "Promoted")]
    assert await trainingjobs(cluster) == ["svc-retrain-1", "svc-retrain-2", "svc-retrain-3"]


async def test_a_retraining_after_rollback_and_no_healthy_version_is_promoted(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="RollbackAndRetrain", retrain=retrain(cluster)))
    isvc = await measure(cluster, 1, accuracy=0.5)
    assert state(isvc, "RolledBack") == ("False", "NoHealthyVersion")

    await cluster.train("svc-retrain-1", {"accuracy": 0.97})
    await cluster.reconcile("ModelVersion", "iris-v2")
    isvc = await settle(cluster)

    assert isvc["status"]["currentVersion"] == 2
    assert history(isvc)[-1] == (2, "Promoted")
    assert state(isvc, "Retraining") == ("False", "Promoted")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"cooldownSeconds": 3600}, "Cooling down"),
        ({"maxPerDay": 1}, "Daily budget spent: 1 of 1"),
    ],
    ids=["cooldown", "budget"],
)
async def test_a_retraining_is_refused_during_cooldown_or_over_budget(
    cluster: Cluster, fields: dict[str, Any], says: str
) -> None:
    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="Retrain", retrain=retrain(cluster, **fields)))
    await measure(cluster, 1, accuracy=0.5)
    # The first retraining fails, so none is in flight when the next breach comes.
    await cluster.reconcile("TrainingJob", "svc-retrain-1")
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    await cluster.job_status("svc-retrain-1-train", {"conditions": [failed]})
    await cluster.reconcile("TrainingJob", "svc-retrain-1")
    isvc = await settle(cluster)
    assert state(isvc, "Retraining") == ("False", "RetrainingFailed")

    isvc = await measure(cluster, 1, accuracy=0.5)

    assert state(isvc, "Retraining") == ("False", "RetrainingRefused")
    assert says in condition(isvc, "Retraining")["message"]
    assert isvc["status"]["retraining"]["count"] == 1
    assert await cluster.get(k8s.TRAININGJOBS, "svc-retrain-2") is None
    assert "RetrainingRefused" in await cluster.reasons(SVC)


async def test_a_retrained_version_that_does_not_beat_the_served_one_is_not_promoted(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1, metrics={"accuracy": 0.95})
    await serve(
        cluster,
        **monitored(
            onDegradation="Retrain",
            retrain=retrain(cluster),
            promotion={"mustBeat": "accuracy"},
        ),
    )
    await measure(cluster, 1, accuracy=0.5)

    await cluster.train("svc-retrain-1", {"accuracy": 0.9})
    await cluster.reconcile("ModelVersion", "iris-v2")
    isvc = await settle(cluster)

    assert isvc["status"]["currentVersion"] == 1
    assert [r["version"] for r in isvc["status"]["rejectedVersions"]] == [2]
    assert state(isvc, "Retraining") == ("False", "NotPromoted")
    assert "accuracy 0.9 does not beat 0.95" in condition(isvc, "Retraining")["message"]
    assert "NotPromoted" in await cluster.reasons(SVC)


async def test_a_due_schedule_starts_a_retraining_and_moves_to_the_next_run(
    cluster: Cluster,
) -> None:
    await cluster.version("iris", 1)
    isvc = await serve(cluster, retrain=retrain(cluster, schedule="@hourly"))
    due = dt.datetime.fromisoformat(isvc["status"]["retraining"]["nextScheduled"])
    assert due > dt.datetime.now(dt.UTC)

    # The operator was down when the run was due: its status still says when.
    await cluster.user.patch_status(
        k8s.INFERENCESERVICES,
        cluster.namespace,
        SVC,
        {"retraining": {"nextScheduled": "2026-01-01T00:00:00Z"}},
    )
    requeue = await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["retraining"]["active"] == "svc-retrain-1"
    assert "scheduled (@hourly)" in condition(isvc, "Retraining")["message"]
    after = dt.datetime.fromisoformat(isvc["status"]["retraining"]["nextScheduled"])
    assert after > dt.datetime.now(dt.UTC)
    assert requeue is not None and requeue <= 3600


# --- invalid specs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"retrain": {"schedule": "61 * * * *"}}, "spec.retrain.schedule: '61 * * * *'"),
        (
            {"monitoring": {"metrics": [{"name": "a", "builtin": "accuracy"}]}},
            "metric 'a' needs min or max",
        ),
    ],
    ids=["cron", "schema"],
)
async def test_an_invalid_spec_builds_nothing(
    cluster: Cluster, spec: dict[str, Any], says: str
) -> None:
    await cluster.version("iris", 1)
    await cluster.create(inferenceservice(SVC, "iris", **spec))

    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["phase"] == "Failed"
    assert state(isvc, "Ready") == ("False", "InvalidSpec")
    assert says in condition(isvc, "Ready")["message"]
    assert await cluster.get(k8s.DEPLOYMENTS, "svc-predictor") is None
    assert await cluster.reasons(SVC) == ["InvalidSpec"]


async def test_a_deployment_the_api_server_rejects_is_invalid_spec(cluster: Cluster) -> None:
    await cluster.version("iris", 1)
    # Valid quantities each, which the CRD cannot compare: the API server refuses them.
    resources = {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}
    await cluster.create(inferenceservice(SVC, "iris", resources=resources))

    await cluster.reconcile(IS, SVC)
    before = cluster.ctx.kube.requests
    await cluster.reconcile(IS, SVC)

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["phase"] == "Failed"
    assert state(isvc, "Ready") == ("False", "InvalidSpec")
    message = condition(isvc, "Ready")["message"]
    assert message.startswith("the API server rejected Deployment svc-predictor: ")
    assert "must be less than or equal to memory limit" in message
    assert cluster.ctx.kube.requests == before
    assert await cluster.get(k8s.DEPLOYMENTS, "svc-predictor") is None
    assert await cluster.reasons(SVC) == ["InvalidSpec"]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500, verb="patch", resource="modelversions"),
        Fault(status=503, verb="patch", resource="deployments"),
        Fault(status=500, verb="patch", resource="inferenceservices/status"),
    ],
    ids=["marking-the-version", "rolling-the-deployment", "writing-the-status"],
)
async def test_a_rollback_survives_an_api_error_at_any_of_its_writes(
    cluster: Cluster, fault: Fault
) -> None:
    await cluster.version("iris", 1)
    await cluster.version("iris", 2)
    await serve(cluster, **monitored())
    injected = cluster.sandbox.inject(attrs.evolve(fault, namespace=cluster.namespace))
    try:
        cluster.ctx.measured[(cluster.namespace, SVC)] = Measured(
            time=T0 + dt.timedelta(minutes=next(_ticks)),
            version=2,
            values={"online-accuracy": Measurement(value=0.5, samples=100, message="")},
        )
        with pytest.raises(k8s.Transient):
            await cluster.reconcile(IS, SVC)
        assert injected.hits == 1
        # The work queue retries the key; the retry decides the same from the same state.
        await cluster.reconcile(IS, SVC)
    finally:
        cluster.sandbox.clear_faults()

    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["currentVersion"] == 1
    assert history(isvc) == [(2, "Initial"), (1, "RolledBack")]
    assert state(isvc, "RolledBack") == ("True", "RolledBack")
    deployment = await cluster.get(k8s.DEPLOYMENTS, f"{SVC}-predictor")
    assert deployment is not None
    assert deployment["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "1"


async def test_each_measurement_is_counted_once_in_the_evaluations_metric(
    cluster: Cluster,
) -> None:
    from mlops_operator import metrics

    await cluster.version("iris", 1)
    await serve(cluster, **monitored(onDegradation="Alert"))
    counter = metrics.EVALUATIONS.labels(cluster.namespace, SVC, "online-accuracy", "Breached")
    before = counter._value.get()

    await measure(cluster, 1, accuracy=0.5)
    await cluster.reconcile(IS, SVC)  # the same measurement again: judged once

    assert counter._value.get() == before + 1
