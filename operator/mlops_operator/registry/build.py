"""What ``mlops-operator register`` writes for a model trained elsewhere: its ``manifest.json``
and its ModelVersion. Pure: the command gathers the facts (digest, what the estimator says,
where it goes) and these functions only shape them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_operator.api.base import API_VERSION, SecretKeyRef
from mlops_operator.api.modelversion import KIND as MODELVERSION_KIND
from mlops_operator.api.modelversion import ArtifactSpec, ModelVersionSpec
from mlops_operator.api.trainingjob import Gate, Task
from mlops_operator.kube import names

REGISTERED_BY = "mlops-operator register"
"""The manifest's ``registeredBy``: the model was brought, not trained by a TrainingJob."""


@dataclass(frozen=True)
class Registration:
    """Everything known about a model being registered by hand."""

    model: str
    version: int
    namespace: str
    artifact_uri: str
    """The artifact directory, ending with ``/``."""
    digest: str
    task: Task
    features: Sequence[str]
    classes: Sequence[Any] | None
    class_name: str
    """``module.Class`` of the estimator (``sklearn.pipeline.Pipeline`` for a pipeline)."""
    framework_version: str
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    gates: Sequence[Gate] = ()
    endpoint: str | None = None
    """Written into the ModelVersion only when given: unset means the operator's default."""
    credentials_secret: str | None = None
    """Likewise: unset means the operator's default Secret."""


def manifest_document(reg: Registration, created_at: str) -> dict[str, Any]:
    """The ``manifest.json`` beside the model: the fields the server reads (``digest``,
    ``task``, ``features``, ``classes``, ``frameworkVersion``) and where it came from."""
    return {
        "digest": reg.digest,
        "model": reg.model,
        "version": reg.version,
        "framework": "scikit-learn",
        "frameworkVersion": reg.framework_version,
        "className": reg.class_name,
        "params": dict(reg.params),
        "task": reg.task,
        "features": list(reg.features),
        "classes": list(reg.classes) if reg.task == "classification" and reg.classes else None,
        "metrics": dict(reg.metrics),
        "registeredBy": REGISTERED_BY,
        "createdAt": created_at,
    }


def build_model_version(reg: Registration) -> dict[str, Any]:
    """The ModelVersion ``<model>-v<version>`` for the registered model; raises pydantic's
    ``ValidationError`` for values the API would refuse (a model name that is no DNS label)."""
    spec = ModelVersionSpec(
        model=reg.model,
        version=reg.version,
        task=reg.task,
        artifact=ArtifactSpec(
            uri=reg.artifact_uri,
            digest=reg.digest,
            framework_version=reg.framework_version,
            endpoint=reg.endpoint,
            credentials_secret=(
                SecretKeyRef(name=reg.credentials_secret) if reg.credentials_secret else None
            ),
        ),
        metrics=dict(reg.metrics),
        params=dict(reg.params),
        gates=list(reg.gates),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": MODELVERSION_KIND,
        "metadata": {
            "name": names.model_version_name(reg.model, reg.version),
            "namespace": reg.namespace,
            "labels": {names.LABEL_MODEL: reg.model, names.LABEL_VERSION: str(reg.version)},
        },
        "spec": spec.to_wire(),
    }
