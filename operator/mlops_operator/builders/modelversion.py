"""A finished training run → the ModelVersion that registers it. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_operator.api.base import API_VERSION, SecretKeyRef
from mlops_operator.api.modelversion import (
    KIND,
    ArtifactSpec,
    ModelVersionSpec,
    SourceSpec,
)
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.builders import names
from mlops_operator.builders.storage import ResolvedStorage


def build_model_version(
    *,
    namespace: str,
    trainingjob: str,
    spec: TrainingJobSpec,
    version: int,
    artifact_uri: str,
    manifest: Mapping[str, Any],
    storage: ResolvedStorage,
) -> dict[str, Any]:
    """The ModelVersion for a succeeded TrainingJob, from the trainer's ``manifest.json``."""
    dataset = manifest.get("dataset") or {}
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
        ),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": names.model_version_name(spec.model, version),
            "namespace": namespace,
            "labels": {
                names.LABEL_MODEL: spec.model,
                names.LABEL_VERSION: str(version),
                names.LABEL_TRAININGJOB: trainingjob,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": mv_spec.to_wire(),
    }
