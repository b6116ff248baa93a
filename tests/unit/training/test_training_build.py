from __future__ import annotations

import json

from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.storage import resolve_storage
from mlops_operator.kube import names
from mlops_operator.settings import Settings
from mlops_operator.training.build import build_training_job

SPEC = TrainingJobSpec.model_validate(
    {
        "model": "cancer",
        "dataset": {"uri": "s3://data/cancer.csv", "target": "target"},
        "estimator": {"className": "sklearn.ensemble.RandomForestClassifier"},
        "backoffLimit": 1,
        "activeDeadlineSeconds": 600,
        "storage": {"credentialsSecret": {"name": "s3-creds"}},
    }
)


def _job() -> dict:  # type: ignore[type-arg]
    settings = Settings(s3_endpoint="http://minio:9000")
    return build_training_job(
        name="cancer-rf",
        namespace="ml",
        uid="0123456789abcdef",
        spec=SPEC,
        image="runtime:1",
        storage=resolve_storage(SPEC.storage, settings),
        output_uri="s3://mlops-artifacts/models/cancer/runs/cancer-rf-01234567/",
        allowed_prefixes=["sklearn."],
        ttl_seconds=3600,
    )


def test_job_runs_the_trainer_with_the_spec_and_limits() -> None:
    job = _job()
    assert job["metadata"]["name"] == "cancer-rf-train"
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["mlops-operator", "train"]
    assert container["args"][-1].startswith("s3://mlops-artifacts/models/cancer/runs/")
    env = {e["name"]: e for e in container["env"]}
    passed = json.loads(env["MLOPS_TRAININGJOB"]["value"])
    assert passed["spec"]["estimator"]["className"] == "sklearn.ensemble.RandomForestClassifier"
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"


def test_credentials_come_from_a_secret_reference_never_a_value() -> None:
    container = _job()["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[key]
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": key}


def test_pod_is_restricted() -> None:
    pod = _job()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_long_names_are_shortened_deterministically() -> None:
    long = "a" * 70
    first = names.training_job_name(long)
    assert len(first) <= 63 and first.endswith("-train")
    assert first == names.training_job_name(long)
    assert first != names.training_job_name("a" * 69 + "b")


def test_permanent_trainer_failures_fail_the_job_without_retries() -> None:
    from mlops_operator.runtime.termination import EXIT_PERMANENT
    from mlops_sandbox.runner import pod_failure_action

    policy = _job()["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, "trainer", EXIT_PERMANENT) == "FailJob"
    assert pod_failure_action(policy, "trainer", 1) == "Count"
    assert pod_failure_action(policy, "sidecar", EXIT_PERMANENT) == "Count"
