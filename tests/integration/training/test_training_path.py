"""TrainingJob → Job → ModelVersion, for real: the operator process talks HTTP to the sandbox
API, the runner executes the trainer as a process, artifacts land in the sandbox S3."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from mlops_sandbox.process import OperatorProcess

pytestmark = pytest.mark.timeout(240)

GATES = [{"metric": "accuracy", "min": 0.9}]


def trainingjob(dataset: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "cancer",
        "dataset": {"uri": dataset, "target": "target"},
        "estimator": {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 30, "max_depth": 6},
        },
        "gates": GATES,
        "backoffLimit": 0,
    }
    spec.update(extra)
    return spec


def test_trainingjob_trains_registers_and_verifies_a_model(
    start_operator: Any, resources: Any, cancer_csv: str, s3: Any, kube: Any, namespace: str
) -> None:
    import kubernetes

    start_operator()
    resources.create("trainingjobs", "TrainingJob", "cancer-rf", trainingjob(cancer_csv))

    tj = resources.wait_status(
        "trainingjobs", "cancer-rf", lambda s: s.get("phase") == "Succeeded", "to succeed"
    )
    status = tj["status"]
    assert status["modelVersion"] == "cancer-v1"
    assert status["version"] == 1
    assert status["metrics"]["accuracy"] > 0.9
    assert status["mainMetric"].startswith("accuracy=")
    assert resources.condition(status, "Ready")["reason"] == "ModelRegistered"
    assert resources.condition(status, "StorageReachable")["status"] == "True"
    assert status["observedGeneration"] == tj["metadata"]["generation"]

    job = kubernetes.client.BatchV1Api(kube).read_namespaced_job(status["jobName"], namespace)
    assert job.status.succeeded == 1

    mv = resources.wait_status(
        "modelversions", "cancer-v1", lambda s: s.get("phase") == "Ready", "to be Ready"
    )
    assert resources.condition(mv["status"], "ArtifactVerified")["status"] == "True"
    assert resources.condition(mv["status"], "GatesPassed")["status"] == "True"
    spec = mv["spec"]
    assert spec["metrics"]["accuracy"] > 0.9
    assert spec["source"]["trainingJob"] == "cancer-rf"
    assert spec["source"]["datasetUri"] == cancer_csv
    assert spec["artifact"]["uri"].endswith(f"/models/{namespace}/cancer/1/")

    bucket, _, prefix = spec["artifact"]["uri"].removeprefix("s3://").partition("/")
    stored = s3.get_object(Bucket=bucket, Key=prefix + "model.joblib")["Body"].read()
    assert "sha256:" + hashlib.sha256(stored).hexdigest() == spec["artifact"]["digest"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert {prefix + "manifest.json", prefix + "reference.json"} <= keys

    events = kubernetes.client.CoreV1Api(kube).list_namespaced_event(namespace).items
    assert any(e.reason == "ModelRegistered" for e in events)


def test_second_run_of_a_model_gets_the_next_version(
    start_operator: Any, resources: Any, cancer_csv: str
) -> None:
    start_operator()
    resources.create("trainingjobs", "TrainingJob", "run-a", trainingjob(cancer_csv))
    resources.wait_status("trainingjobs", "run-a", lambda s: s.get("phase") == "Succeeded", "ok")
    resources.create("trainingjobs", "TrainingJob", "run-b", trainingjob(cancer_csv))
    tj = resources.wait_status(
        "trainingjobs", "run-b", lambda s: s.get("phase") == "Succeeded", "to succeed"
    )
    assert tj["status"]["modelVersion"] == "cancer-v2"
    assert sorted(mv["spec"]["version"] for mv in resources.list("modelversions")) == [1, 2]


@pytest.mark.parametrize(
    "failpoint", ["register.after-reserve", "register.after-copy", "register.after-create"]
)
def test_operator_killed_during_registration_converges_to_one_version(
    start_operator: Any, resources: Any, cancer_csv: str, failpoint: str
) -> None:
    crashing: OperatorProcess = start_operator(MLOPS_FAILPOINTS=failpoint)
    resources.create("trainingjobs", "TrainingJob", "crashy", trainingjob(cancer_csv))
    assert crashing.wait_exit(timeout=120) == 137, crashing.output()

    start_operator()
    tj = resources.wait_status(
        "trainingjobs", "crashy", lambda s: s.get("phase") == "Succeeded", "to succeed"
    )
    assert tj["status"]["modelVersion"] == "cancer-v1"
    versions = resources.list("modelversions")
    assert [mv["metadata"]["name"] for mv in versions] == ["cancer-v1"]
    resources.wait_status("modelversions", "cancer-v1", lambda s: s.get("phase") == "Ready", "ok")


def test_the_same_model_in_two_namespaces_keeps_both_artifacts(
    start_operator: Any,
    resources: Any,
    cancer_csv: str,
    s3: Any,
    kube: Any,
    sandbox: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Versions are numbered per namespace: both get version 1 of ``cancer``, and the second
    must not overwrite the first one's model."""
    import kubernetes

    other = f"{namespace}-b"
    sandbox.ensure_namespace(other)
    second = OperatorProcess(
        sandbox.env(),
        tmp_path / "operator-b.log",
        namespace=other,
        env={"MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:sandbox"},
    )
    try:
        start_operator()
        others = type(resources)(resources.api, other)
        resources.create("trainingjobs", "TrainingJob", "cancer-rf", trainingjob(cancer_csv))
        resources.wait_status(
            "modelversions", "cancer-v1", lambda s: s.get("phase") == "Ready", "ok"
        )
        small = trainingjob(
            cancer_csv,
            estimator={
                "className": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 5, "max_depth": 3},
            },
        )
        others.create("trainingjobs", "TrainingJob", "cancer-rf", small)
        others.wait_status("modelversions", "cancer-v1", lambda s: s.get("phase") == "Ready", "ok")

        artifacts = []
        for where in (resources, others):
            spec = where.get("modelversions", "cancer-v1")["spec"]
            assert spec["artifact"]["uri"].endswith(f"/models/{where.namespace}/cancer/1/")
            bucket, _, prefix = spec["artifact"]["uri"].removeprefix("s3://").partition("/")
            stored = s3.get_object(Bucket=bucket, Key=prefix + "model.joblib")["Body"].read()
            assert "sha256:" + hashlib.sha256(stored).hexdigest() == spec["artifact"]["digest"]
            artifacts.append(spec["artifact"])
        assert artifacts[0]["uri"] != artifacts[1]["uri"]
        assert artifacts[0]["digest"] != artifacts[1]["digest"]
    finally:
        second.stop()
        kubernetes.client.CoreV1Api(kube).delete_namespace(other)
    for marker in ("Traceback", "Warning:"):
        assert marker not in second.output(), second.output()
