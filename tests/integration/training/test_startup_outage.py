"""The API answering 503 to the operator from the moment it starts: kopf's discovery and first
listings fail, and so do the first reconciles' writes. Every object created before or during
the window converges once the API answers again, however long the window lasted: kopf gave
up after 9 attempts (54 s), and a start-up outage of a minute stopped the operator, leaving
every object as it was."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_sandbox.cluster import Sandbox
from mlops_sandbox.faults import Fault
from tests.integration.serving.test_inferenceservice_controller import register
from tests.integration.training.test_training_path import trainingjob

pytestmark = pytest.mark.timeout(300)

CLIENTS = ("mlops-operator", "kopf")
"""The operator's own calls and kopf's (discovery, listings, watches)."""
WRITES = "create,patch,update,delete"


@pytest.mark.parametrize(
    ("verbs", "seconds", "failed"),
    [
        # The first reconciles' writes fail, and are retried.
        pytest.param(WRITES, 10.0, "mlops-operator", id="writes-10s"),
        # kopf's discovery fails for a minute: the reconciles start once it is over.
        pytest.param(None, 60.0, "kopf", id="everything-60s"),
    ],
)
def test_objects_created_before_and_during_a_503_window_at_start_up_converge(
    sandbox: Sandbox,
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    s3: Any,
    namespace: str,
    verbs: str | None,
    seconds: float,
    failed: str,
) -> None:
    register(resources, s3, namespace, 1, accuracy=0.95)
    resources.create("inferenceservices", "InferenceService", "iris", {"model": "iris"})
    resources.create("trainingjobs", "TrainingJob", "before", trainingjob(cancer_csv))
    faults = [
        sandbox.inject(Fault(status=503, verb=verbs, client=client, times=None, seconds=seconds))
        for client in CLIENTS
    ]
    try:
        operator = start_operator()
        resources.create("trainingjobs", "TrainingJob", "during", trainingjob(cancer_csv))
        finished = [
            resources.wait_status(
                "trainingjobs",
                name,
                lambda s: s.get("phase") in ("Succeeded", "Failed"),
                "to finish",
                timeout=seconds + 90,
            )
            for name in ("before", "during")
        ]
        isvc = resources.wait_status(
            "inferenceservices",
            "iris",
            lambda s: resources.condition(s, "Ready").get("status") == "True",
            "to serve",
            timeout=60,
        )
    finally:
        sandbox.clear_faults()

    assert [rule.client for rule in faults if rule.hits] == [failed]
    assert operator.process.poll() is None, "the operator stopped"
    assert [tj["status"]["phase"] for tj in finished] == ["Succeeded", "Succeeded"]
    assert sorted(tj["status"]["modelVersion"] for tj in finished) == ["cancer-v1", "cancer-v2"]
    assert isvc["status"]["currentVersion"] == 1
    mv = resources.get("modelversions", "iris-v1")
    assert resources.condition(mv["status"], "ArtifactVerified")["status"] == "True"
