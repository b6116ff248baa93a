"""A retraining with an API error at its Nth write, for every N: the still-served retrained
version, one of everything. The writes, from the degradation verdict to the new version served:
the retraining TrainingJob, the service's status and Events; the Job, the TrainingJob's status
and Events; the registration (the number reserved, the ModelVersion, the Succeeded status,
Events); the new version's verification; the must-beat promotion (the Deployment, the status,
Events); the rollout's end; who serves which version.

Each write fails once, in one of two ways an API server fails a write: ``refused`` (a 503,
nothing written) or ``lost`` (written, and the answer never arrives: a read timeout after the
API server committed it, so the retry finds its own write done). The work queue retries the
failed reconcile, as it does in the operator."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

import pytest

from mlops_operator.kube import client as k8s
from mlops_operator.kube import names
from mlops_operator.monitoring.aggregate import Measurement
from mlops_operator.monitoring.judge import Measured
from mlops_sandbox.faults import Fault
from tests.controllers.conftest import Cluster, state
from tests.controllers.test_inferenceservice_reconcile import (
    IS,
    SVC,
    history,
    monitored,
    retrain,
    serve,
)

T0 = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
_ticks = itertools.count(1)
WRITES = "create,patch,update,delete"
TJ, MV = "TrainingJob", "ModelVersion"
RETRAINING = f"{SVC}-retrain-1"
ATTEMPTS = 3
"""Reconciles of one step before the test gives up (one fault fails at most one)."""
RETRAIN_WRITES = 20
"""Every write the operator makes in the sequence below, in order: the service creates the
TrainingJob, writes its status and 3 Events; the TrainingJob creates its Job, writes its
status and an Event; registers (the number reserved in its status, the ModelVersion, the
Succeeded status, an Event); the version's verified status and an Event; the promotion (the
Deployment, the status, 2 Events); the service Ready; the version's ``servedBy``. A fault at
the 21st finds no write to fail, which proves the list whole."""
DEFAULT_SAMPLE = 8
"""Cases of the default suite, drawn with ``SEED``; the others run with ``-m chaos``."""
SEED = 11
EVENTS = {
    SVC: ["VersionChanged", "RetrainingStarted", "MetricsBreached", "AlertOnly"]
    + ["VersionChanged", "Promoted"],
    RETRAINING: ["JobCreated", "ModelRegistered"],
    "iris-v1": ["VersionReady"],
    "iris-v2": ["VersionReady"],
}
"""The reasons of the Events about each object in the sequence, as a fault-free run posts
them: every one exactly once whatever write failed (an Event's own create included)."""
FAULTS: dict[str, dict[str, Any]] = {
    "refused": {"status": 503},
    "lost": {"action": "lost"},
}


async def attempt(cluster: Cluster, kind: str, name: str) -> None:
    """Reconcile ``kind``/``name`` as the work queue does: again after a failure."""
    for _ in range(ATTEMPTS):
        try:
            await cluster.reconcile(kind, name)
            return
        except k8s.Transient:
            continue
    raise AssertionError(f"{kind} {name} still fails after {ATTEMPTS} reconciles")


async def retrain_and_promote(cluster: Cluster) -> None:
    """A breach judged by the service; its retraining trained (the test plays the Job
    controller and the trainer), registered, verified, promoted and rolled out."""
    cluster.ctx.measured[(cluster.namespace, SVC)] = Measured(
        time=T0 + dt.timedelta(minutes=next(_ticks)),
        version=1,
        values={"online-accuracy": Measurement(value=0.5, samples=100, message="")},
    )
    await attempt(cluster, IS, SVC)
    await attempt(cluster, TJ, RETRAINING)
    await cluster.trainer_succeeds(
        names.training_job_name(RETRAINING), {"accuracy": 0.97}, b"retrained"
    )
    await attempt(cluster, TJ, RETRAINING)
    await attempt(cluster, MV, "iris-v2")
    await attempt(cluster, IS, SVC)
    await cluster.deployment_ready(names.predictor_name(SVC))
    await attempt(cluster, IS, SVC)
    for version in ("iris-v1", "iris-v2"):
        await attempt(cluster, MV, version)


def operator_writes(cluster: Cluster, since: float) -> list[tuple[str, str, str | None]]:
    """(verb, resource, name) of the operator's writes in the namespace since ``since``."""
    return [
        (r.verb, r.resource, r.name)
        for r in cluster.sandbox.requests(
            client=k8s.USER_AGENT, namespace=cluster.namespace, verb=WRITES.split(","), since=since
        )
    ]


def cases() -> list[Any]:
    """Every (fault, N): a seeded sample in the default suite, the rest marked ``chaos``."""
    every = [(kind, nth) for kind in FAULTS for nth in range(1, RETRAIN_WRITES + 2)]
    sample = set(random.Random(SEED).sample(every, DEFAULT_SAMPLE))
    return [
        pytest.param(
            kind, nth, id=f"{kind}-{nth}", marks=() if (kind, nth) in sample else pytest.mark.chaos
        )
        for kind, nth in every
    ]


@pytest.mark.parametrize(("kind", "nth"), cases())
async def test_a_retraining_with_an_error_at_its_nth_write_still_ends_retrained(
    cluster: Cluster, kind: str, nth: int
) -> None:
    await cluster.version("iris", 1, metrics={"accuracy": 0.9})
    await serve(
        cluster,
        **monitored(
            onDegradation="Retrain", retrain=retrain(cluster), promotion={"mustBeat": "accuracy"}
        ),
    )
    fault = cluster.sandbox.inject(
        Fault(
            **FAULTS[kind],
            verb=WRITES,
            namespace=cluster.namespace,
            client=k8s.USER_AGENT,
            after=nth - 1,
        )
    )
    try:
        await retrain_and_promote(cluster)
    finally:
        cluster.sandbox.clear_faults()

    assert fault.hits == (1 if nth <= RETRAIN_WRITES else 0)
    isvc = await cluster.obj(IS, SVC)
    assert isvc["status"]["currentVersion"] == 2
    assert history(isvc) == [(1, "Initial"), (2, "Promoted")]
    assert state(isvc, "Ready") == ("True", "PredictorReady")
    assert state(isvc, "Retraining") == ("False", "Promoted")
    assert isvc["status"]["retraining"]["count"] == 1
    deployment = await cluster.get(k8s.DEPLOYMENTS, names.predictor_name(SVC))
    assert deployment is not None
    assert deployment["spec"]["template"]["metadata"]["labels"]["mlops.dev/version"] == "2"

    tjs = await cluster.user.list(k8s.TRAININGJOBS, cluster.namespace)
    assert [t["metadata"]["name"] for t in tjs] == [RETRAINING]
    assert tjs[0]["status"]["phase"] == "Succeeded"
    assert tjs[0]["status"]["modelVersion"] == "iris-v2"
    assert state(tjs[0], "Ready") == ("True", "ModelRegistered")
    jobs = await cluster.user.list(k8s.JOBS, cluster.namespace)
    assert [j["metadata"]["name"] for j in jobs] == [names.training_job_name(RETRAINING)]
    versions = await cluster.user.list(k8s.MODELVERSIONS, cluster.namespace)
    assert sorted(v["metadata"]["name"] for v in versions) == ["iris-v1", "iris-v2"]
    v2 = await cluster.obj(MV, "iris-v2")
    assert v2["status"]["phase"] == "Ready"
    assert state(v2, "ArtifactVerified")[0] == "True"
    assert v2["status"].get("servedBy") == [SVC]
    for name, reasons in EVENTS.items():
        assert sorted(await cluster.reasons(name)) == sorted(reasons), (
            name,
            await cluster.reasons(name),
        )
