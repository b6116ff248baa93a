"""TrainingJob → batch/v1 Job running ``mlops-operator train``. Pure."""

from __future__ import annotations

import json
from typing import Any

from mlops_operator.api.base import API_VERSION, ResourceRequirements
from mlops_operator.api.trainingjob import KIND, TrainingJobSpec
from mlops_operator.builders import names
from mlops_operator.builders.storage import ResolvedStorage
from mlops_operator.runtime.termination import EXIT_PERMANENT

CONTAINER = "trainer"
RUNTIME_UID = 65532
TERMINATION_LOG = "/dev/termination-log"
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}


def restricted_pod_security() -> dict[str, Any]:
    """Pod-level security context that passes the ``restricted`` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "fsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    """Container-level security context: no privileges, read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(spec: ResourceRequirements | None) -> dict[str, Any]:
    if spec is None:
        return DEFAULT_RESOURCES
    return spec.model_dump(mode="json", exclude_none=True)


def _storage_env(storage: ResolvedStorage) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    if storage.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage.region})
    if storage.credentials_secret:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append(
                {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": storage.credentials_secret, "key": key}},
                }
            )
    return env


def build_training_job(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: TrainingJobSpec,
    image: str,
    storage: ResolvedStorage,
    output_uri: str,
    allowed_prefixes: list[str],
    ttl_seconds: int,
) -> dict[str, Any]:
    """The batch Job that trains one TrainingJob; the owner reference is added by the caller."""
    labels = {
        names.LABEL_TRAININGJOB: name,
        names.LABEL_MODEL: spec.model,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "trainer",
    }
    trainingjob = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": spec.to_wire(),
    }
    env = [
        {"name": "MLOPS_TRAININGJOB", "value": json.dumps(trainingjob, separators=(",", ":"))},
        {"name": "MLOPS_S3_BUCKET", "value": storage.bucket},
        {"name": "MLOPS_S3_PREFIX", "value": storage.prefix},
        {"name": "MLOPS_ALLOWED_ESTIMATOR_PREFIXES", "value": json.dumps(allowed_prefixes)},
        {"name": "MLOPS_TERMINATION_MESSAGE_PATH", "value": TERMINATION_LOG},
        {"name": "HOME", "value": "/tmp"},
        *_storage_env(storage),
    ]
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        # A wrong spec or dataset shape fails the Job at once; a node drain is not a failure.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [EXIT_PERMANENT],
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "ttlSecondsAfterFinished": ttl_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": restricted_pod_security(),
                "containers": [
                    {
                        "name": CONTAINER,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["mlops-operator", "train"],
                        "args": ["--output", output_uri],
                        "env": env,
                        "resources": _resources(spec.resources),
                        "securityContext": restricted_container_security(),
                        "terminationMessagePath": TERMINATION_LOG,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.training_job_name(name),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": job_spec,
    }
