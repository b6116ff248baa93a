"""Storage outages while the loop runs: S3 stopped under a training pod, and under a
registration. A storage outage is not a training failure: the run waits for S3 and ends
``Succeeded``, and ``StorageReachable`` says what the trainer and the operator see."""

from __future__ import annotations

import re
from typing import Any

import kubernetes
import pytest

from mlops_sandbox.process import OperatorProcess, wait_for
from tests.e2e.test_monitoring_loop import trainingjob

pytestmark = pytest.mark.timeout(240)


def _job_pods(kube: Any, namespace: str, job: str) -> list[Any]:
    core = kubernetes.client.CoreV1Api(kube)
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return pods


def test_a_storage_outage_during_training_waits_for_storage_and_succeeds(
    start_operator: Any, resources: Any, cancer_csv: str, sandbox: Any, kube: Any, namespace: str
) -> None:
    start_operator()
    # backoffLimit 0: a single counted pod failure would fail the run for good.
    resources.create("trainingjobs", "TrainingJob", "outage", trainingjob(cancer_csv))
    tj = resources.wait_status("trainingjobs", "outage", lambda s: s.get("jobName"), "a Job")
    job = tj["status"]["jobName"]
    sandbox.storage_down()
    try:
        down = resources.wait_status(
            "trainingjobs",
            "outage",
            lambda s: resources.condition(s, "StorageReachable").get("status") == "False",
            "to report the storage unreachable",
            timeout=60,
        )["status"]
        assert down["phase"] in ("Pending", "Running"), down
        assert resources.condition(down, "Ready")["reason"] == "StorageUnreachable"
        assert "cannot reach" in resources.condition(down, "StorageReachable")["message"]
        # The pods keep failing on storage, none of them counted against backoffLimit 0.
        wait_for(
            "a second trainer pod failing on storage",
            lambda: (
                sum(1 for p in _job_pods(kube, namespace, job) if p.status.phase == "Failed") >= 2
            ),
            timeout=60,
        )
        still = resources.get("trainingjobs", "outage")["status"]
        assert still["phase"] != "Failed", still
    finally:
        sandbox.storage_up()

    done = resources.wait_status(
        "trainingjobs",
        "outage",
        lambda s: s.get("phase") in ("Succeeded", "Failed"),
        "to finish once storage is back",
        timeout=120,
    )["status"]
    assert done["phase"] == "Succeeded", done
    assert done["modelVersion"] == "cancer-v1"
    reachable = resources.condition(done, "StorageReachable")
    assert (reachable["status"], reachable["reason"]) == ("True", "StorageOK")
    batch = kubernetes.client.BatchV1Api(kube)
    assert not batch.read_namespaced_job(job, namespace).status.failed


def test_a_storage_outage_during_registration_retries_quietly_and_registers_once(
    start_operator: Any, resources: Any, cancer_csv: str, sandbox: Any
) -> None:
    crashing: OperatorProcess = start_operator(MLOPS_FAILPOINTS="register.after-reserve")
    resources.create("trainingjobs", "TrainingJob", "late", trainingjob(cancer_csv))
    assert crashing.wait_exit(timeout=120) == 137, crashing.output()

    sandbox.storage_down()
    try:
        operator = start_operator()
        down = resources.wait_status(
            "trainingjobs",
            "late",
            lambda s: resources.condition(s, "StorageReachable").get("status") == "False",
            "to report the storage unreachable while registering",
            timeout=60,
        )["status"]
        assert down["phase"] == "Running", down
        assert resources.condition(down, "Ready")["reason"] == "StorageUnreachable"
        wait_for(
            "three retries of the registration",
            lambda: len(re.findall(r"trainingjobs \S+/late: .*retrying", operator.output())) >= 3,
            timeout=60,
        )
    finally:
        sandbox.storage_up()

    done = resources.wait_status(
        "trainingjobs", "late", lambda s: s.get("phase") == "Succeeded", "to register", timeout=90
    )["status"]
    assert done["modelVersion"] == "cancer-v1"
    assert resources.condition(done, "StorageReachable")["status"] == "True"
    assert [mv["metadata"]["name"] for mv in resources.list("modelversions")] == ["cancer-v1"]
    # One line per retry and one Warning Event, never a traceback (the fixture fails on one
    # at teardown).
    warnings = [
        line for line in operator.output().splitlines() if "/late:" in line and "WARNING" in line
    ]
    retries = [line for line in warnings if "retrying in" in line]
    assert len(retries) >= 3
    assert len(warnings) == len(retries) + 1, warnings
