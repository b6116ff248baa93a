"""TrainingJob → batch/v1 Job running ``mlops-operator train``. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlops_operator.api.base import API_VERSION, SecretKeyRef
from mlops_operator.api.modelversion import KIND as MODELVERSION_KIND
from mlops_operator.api.modelversion import (
    ArtifactSpec,
    ModelVersionSpec,
    SourceSpec,
)
from mlops_operator.api.pod import PodOverrides, merge_overrides
from mlops_operator.api.trainingjob import KIND, VALIDATE_AGAINST_ENV, TrainingJobSpec
from mlops_operator.artifacts.layout import CARD_FILE, file_uri
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.kube import names
from mlops_operator.kube.pod import (
    apply_overrides,
    resources,
    restricted_container_security,
    restricted_pod_security,
    storage_env,
)
from mlops_operator.runtime.termination import EXIT_DATA_VALIDATION, EXIT_PERMANENT, EXIT_STORAGE

CONTAINER = "trainer"
OUTPUT_ANNOTATION = "mlops.dev/output"
"""Where the trainer writes (its ``--output``), readable from the Job's metadata."""
GENERATION_ANNOTATION = "mlops.dev/generation"
"""The TrainingJob generation the Job trains."""
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
    generation: int = 1,
    pod_defaults: PodOverrides | None = None,
    reference: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The batch Job that trains one TrainingJob; the owner reference is added by the caller.
    The pod gets ``pod_defaults`` (the operator's) overridden by the spec's ``podSpec``.
    ``reference`` is the ModelVersion (name, ``schema.json`` URI) its dataset is checked
    against before fitting."""
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
    if reference is not None:
        name_, schema_uri = reference
        env.append(
            {
                "name": VALIDATE_AGAINST_ENV,
                "value": json.dumps({"name": name_, "schemaUri": schema_uri}),
            }
        )
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        # A wrong spec or dataset shape fails the Job at once; a storage outage and a node
        # drain are not failures of the training: the pod is replaced without counting.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [EXIT_STORAGE],
                    },
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [EXIT_PERMANENT, EXIT_DATA_VALIDATION],
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
    apply_overrides(job_spec["template"], merge_overrides(pod_defaults, spec.pod_spec), labels)
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.training_job_name(name, generation),
            "namespace": namespace,
            "labels": labels,
            "annotations": {OUTPUT_ANNOTATION: output_uri, GENERATION_ANNOTATION: str(generation)},
        },
        "spec": job_spec,
    }


def build_model_version(
    *,
    namespace: str,
    trainingjob: str,
    spec: TrainingJobSpec,
    version: int,
    artifact_uri: str,
    manifest: Mapping[str, Any],
    storage: ResolvedStorage,
    run_uri: str,
) -> dict[str, Any]:
    """The ModelVersion for a succeeded TrainingJob, from the trainer's ``manifest.json``;
    ``run_uri`` is the run's output it was copied from (recorded in an annotation)."""
    dataset = manifest.get("dataset") or {}
    lineage = manifest.get("lineage") or {}
    mv_spec = ModelVersionSpec(
        model=spec.model,
        version=version,
        task=manifest.get("task") or spec.task,
        artifact=ArtifactSpec(
            uri=artifact_uri,
            digest=manifest["digest"],
            framework_version=manifest.get("frameworkVersion"),
            python_version=manifest.get("pythonVersion"),
            endpoint=storage.endpoint,
            credentials_secret=(
                SecretKeyRef(name=storage.credentials_secret)
                if storage.credentials_secret
                else None
            ),
        ),
        metrics={k: float(v) for k, v in (manifest.get("metrics") or {}).items()},
        params=dict(manifest.get("params") or spec.estimator.params),
        gates=spec.gates,
        source=SourceSpec(
            training_job=trainingjob,
            dataset_uri=dataset.get("uri") or spec.dataset.uri,
            dataset_digest=dataset.get("digest"),
            dataset_version_id=dataset.get("versionId"),
            dataset_etag=dataset.get("etag"),
            dataset_last_modified=dataset.get("lastModified"),
            dataset_rows=dataset.get("rows"),
            parent_version=lineage.get("parentVersion"),
            training_spec=lineage.get("trainingSpec"),
        ),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": MODELVERSION_KIND,
        "metadata": {
            "name": names.model_version_name(spec.model, version),
            "namespace": namespace,
            "annotations": {
                names.CARD_ANNOTATION: file_uri(artifact_uri, CARD_FILE),
                names.RUN_ANNOTATION: run_uri,
            },
            "labels": {
                names.LABEL_MODEL: spec.model,
                names.LABEL_VERSION: str(version),
                names.LABEL_TRAININGJOB: trainingjob,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": mv_spec.to_wire(),
    }
