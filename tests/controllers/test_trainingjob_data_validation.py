"""The TrainingJob reconcile and the data checks: the reference version handed to the Job,
a dataset stopped before fitting, warnings on success, the card's location."""

from __future__ import annotations

import json
from typing import Any

from mlops_operator.artifacts.layout import file_uri
from mlops_operator.kube import client as k8s
from mlops_operator.runtime import termination as tm
from tests.controllers.conftest import Cluster, condition, state
from tests.support.factories import trainingjob

TJ = "TrainingJob"


def _env(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


async def _fail_pod(cluster: Cluster, job_name: str, message: str, exit_code: int) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job_name}-abcde", "labels": {"job-name": job_name}},
        "spec": {"containers": [{"name": "trainer", "image": "runtime"}]},
    }
    await cluster.user.create(k8s.PODS, cluster.namespace, pod)
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    await cluster.user.patch_status(
        k8s.PODS,
        cluster.namespace,
        pod["metadata"]["name"],
        {
            "phase": "Failed",
            "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}],
        },
    )
    failed = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}
    await cluster.job_status(job_name, {"failed": 1, "conditions": [failed]})


async def test_a_dataset_that_fails_its_checks_fails_the_trainingjob_naming_the_columns(
    cluster: Cluster,
) -> None:
    await cluster.create(trainingjob("v1", "iris", cluster.dataset()))
    first = await cluster.train("v1", {"accuracy": 0.9})
    await cluster.create(
        trainingjob("retrain", "iris", cluster.dataset(), validation={"against": "latest"})
    )
    await cluster.reconcile(TJ, "retrain")
    tj = await cluster.obj(TJ, "retrain")
    job = await cluster.user.get(k8s.JOBS, cluster.namespace, tj["status"]["jobName"])
    reference = json.loads(_env(job)["MLOPS_VALIDATE_AGAINST"])
    assert reference == {
        "name": first["status"]["modelVersion"],
        "schemaUri": file_uri(first["status"]["artifactUri"], "schema.json"),
    }

    findings: list[dict[str, object]] = [
        {"check": "missingColumn", "severity": "error", "column": "b", "message": "missing"},
        {"check": "typeChanged", "severity": "error", "column": "a", "message": "now text"},
        {"check": "drift", "severity": "warning", "column": "c", "message": "PSI 0.2"},
    ]
    said = tm.format_validation_failure(
        "dataset s3://x against iris-v1: 2 data checks failed before fitting (columns: a, b)",
        findings,
    )
    await _fail_pod(cluster, job["metadata"]["name"], said, tm.EXIT_DATA_VALIDATION)
    await cluster.reconcile(TJ, "retrain")

    tj = await cluster.obj(TJ, "retrain")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "DataValidationFailed")
    assert state(tj, "DataValidated") == ("False", "DataValidationFailed")
    message = condition(tj, "Ready")["message"]
    assert "(columns: a, b)" in message and "findings=" not in message
    assert [(f["check"], f["column"]) for f in tj["status"]["findings"]] == [
        ("missingColumn", "b"),
        ("typeChanged", "a"),
        ("drift", "c"),
    ]
    assert ("Warning", "DataValidationFailed", message) in await cluster.events("retrain")
    fail_job = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert fail_job[0]["onExitCodes"]["values"] == [tm.EXIT_PERMANENT, tm.EXIT_DATA_VALIDATION]


async def test_a_reference_version_that_does_not_exist_fails_without_a_job(
    cluster: Cluster,
) -> None:
    await cluster.create(
        trainingjob("tj", "iris", cluster.dataset(), validation={"against": "iris-v7"})
    )
    await cluster.reconcile(TJ, "tj")
    tj = await cluster.obj(TJ, "tj")
    assert tj["status"]["phase"] == "Failed"
    assert state(tj, "Ready") == ("False", "ReferenceNotFound")
    assert "'iris-v7', which does not exist" in condition(tj, "Ready")["message"]
    assert await cluster.user.list(k8s.JOBS, cluster.namespace) == []


async def test_a_first_training_against_latest_runs_unchecked(cluster: Cluster) -> None:
    await cluster.create(
        trainingjob("tj", "iris", cluster.dataset(), validation={"against": "latest"})
    )
    await cluster.reconcile(TJ, "tj")
    tj = await cluster.obj(TJ, "tj")
    job = await cluster.user.get(k8s.JOBS, cluster.namespace, tj["status"]["jobName"])
    assert "MLOPS_VALIDATE_AGAINST" not in _env(job)


async def test_warnings_on_success_are_in_status_and_the_card_is_linked(cluster: Cluster) -> None:
    await cluster.create(trainingjob("v1", "iris", cluster.dataset()))
    await cluster.train("v1", {"accuracy": 0.9})
    await cluster.create(
        trainingjob("tj", "iris", cluster.dataset(), validation={"against": "iris-v1"})
    )
    validation = {
        "against": "iris-v1",
        "findings": [
            {"check": "newCategories", "severity": "warning", "column": "city", "message": "x"}
        ],
    }
    lineage = {"parentVersion": "iris-v1"}
    tj = await cluster.train("tj", {"accuracy": 0.9}, validation=validation, lineage=lineage)
    assert state(tj, "DataValidated") == ("True", "DataValidationWarnings")
    assert tj["status"]["findings"][0]["column"] == "city"
    assert tj["status"]["cardUri"] == file_uri(tj["status"]["artifactUri"], "card.md")
    await cluster.reconcile("ModelVersion", "iris-v2")
    mv = await cluster.obj("ModelVersion", "iris-v2")
    assert mv["status"]["cardUri"] == tj["status"]["cardUri"]
    assert mv["spec"]["source"]["parentVersion"] == "iris-v1"
