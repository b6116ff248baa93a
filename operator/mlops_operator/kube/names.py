"""Deterministic names, so restarts converge without duplicates. Storage locations are in
:mod:`mlops_operator.artifacts.layout`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

LABEL_MODEL = "mlops.dev/model"
LABEL_VERSION = "mlops.dev/version"
LABEL_TRAININGJOB = "mlops.dev/trainingjob"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "mlops-operator"

DEGRADED_ANNOTATION = "mlops.dev/degraded"
"""On a ModelVersion: why monitoring found it degraded. Written by the service that found
it; the registry turns it into phase ``Degraded``; remove it to clear the mark."""

CARD_ANNOTATION = "mlops.dev/card"
"""On a ModelVersion the operator registered: its model card (``card.md``); the registry
shows it as ``status.cardUri``."""

RUN_ANNOTATION = "mlops.dev/run"
"""On a ModelVersion the operator registered: the run (the trainer's output directory, one
per TrainingJob uid and generation) it was copied from, so a registration retried from a
stale status finds its own version instead of registering the run again."""

MAX_NAME = 63


def _fit(name: str, suffix: str) -> str:
    """``name + suffix`` within 63 characters; a hash keeps shortened names unique."""
    if len(name) + len(suffix) <= MAX_NAME:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{name[:keep].rstrip('-')}-{digest}{suffix}"


def training_job_name(trainingjob: str, generation: int = 1) -> str:
    """The batch Job of a TrainingJob's generation: ``<tj>-train``, then ``<tj>-train-g<N>``
    for a spec changed after it ran."""
    return _fit(trainingjob, "-train" if generation <= 1 else f"-train-g{generation}")


def model_version_name(model: str, version: int) -> str:
    """The ModelVersion of version N: ``<model>-v<N>``."""
    return f"{model}-v{version}"


LABEL_INFERENCESERVICE = "mlops.dev/inferenceservice"
PREDICTOR_PORT = 8080
SERVICE_PORT = 80
PREDICTOR_GRPC_PORT = 8081
"""The predictor's Open Inference Protocol gRPC port, in the pod and on the Service."""


def predictor_name(inferenceservice: str) -> str:
    """The Deployment and Service of an InferenceService: ``<isvc>-predictor``."""
    return _fit(inferenceservice, "-predictor")


def service_url(inferenceservice: str, namespace: str) -> str:
    """The in-cluster URL of an InferenceService."""
    return f"http://{predictor_name(inferenceservice)}.{namespace}.svc.cluster.local"


def retrain_name(inferenceservice: str, n: int) -> str:
    """The n-th retraining TrainingJob of a service: ``<isvc>-retrain-<n>``."""
    return _fit(inferenceservice, f"-retrain-{n}")


SPEC_HASH = "mlops.dev/spec-hash"
"""Annotation on every owned child: the hash of what the operator wants it to be, so
server-side defaults never make it look different and never cause a patch loop."""


LAST_APPLIED = "mlops.dev/last-applied"
"""Annotation on every owned child: compact JSON of what the operator last applied to it (its
labels, its annotations but this one, its spec), as ``kubectl apply`` keeps its
``last-applied-configuration``: a field the operator set and no longer sets is removed, one
it never set (another controller's, a default) is left alone."""


def spec_hash(obj: Mapping[str, Any]) -> str:
    """A short stable hash of a child's spec and labels."""
    meta = obj.get("metadata") or {}
    text = json.dumps({"spec": obj.get("spec"), "labels": meta.get("labels")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
