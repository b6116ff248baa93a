"""TrainingJob → batch/v1 Job running ``mlops-operator train``. Pure."""

from __future__ import annotations

import json
from typing import Any

from mlops_operator.api.base import API_VERSION
from mlops_operator.api.trainingjob import KIND, TrainingJobSpec
from mlops_operator.builders import names
from mlops_operator.builders.pod import (
    resources,
    restricted_container_security,
    restricted_pod_security,
    storage_env,
)
from mlops_operator.builders.storage import ResolvedStorage
from mlops_operator.runtime.termination import EXIT_PERMANENT

CONTAINER = "trainer"
TERMINATION_LOG = "/dev/termination-log"
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}


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
        *storage_env(storage),
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
                        "resources": resources(spec.resources, DEFAULT_RESOURCES),
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
