"""Deterministic names, so restarts converge without duplicates. Storage locations are in
:mod:`mlops_operator.artifacts.layout`."""

from __future__ import annotations

import hashlib

LABEL_MODEL = "mlops.dev/model"
LABEL_VERSION = "mlops.dev/version"
LABEL_TRAININGJOB = "mlops.dev/trainingjob"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "mlops-operator"

MAX_NAME = 63


def _fit(name: str, suffix: str) -> str:
    """``name + suffix`` within 63 characters; a hash keeps shortened names unique."""
    if len(name) + len(suffix) <= MAX_NAME:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{name[:keep].rstrip('-')}-{digest}{suffix}"


def training_job_name(trainingjob: str) -> str:
    """The batch Job of a TrainingJob: ``<tj>-train``."""
    return _fit(trainingjob, "-train")


def model_version_name(model: str, version: int) -> str:
    """The ModelVersion of version N: ``<model>-v<N>``."""
    return f"{model}-v{version}"


LABEL_INFERENCESERVICE = "mlops.dev/inferenceservice"
PREDICTOR_PORT = 8080
SERVICE_PORT = 80


def predictor_name(inferenceservice: str) -> str:
    """The Deployment and Service of an InferenceService: ``<isvc>-predictor``."""
    return _fit(inferenceservice, "-predictor")


def service_url(inferenceservice: str, namespace: str) -> str:
    """The in-cluster URL of an InferenceService."""
    return f"http://{predictor_name(inferenceservice)}.{namespace}.svc.cluster.local"


def retrain_name(inferenceservice: str, n: int) -> str:
    """The n-th retraining TrainingJob of a service: ``<isvc>-retrain-<n>``."""
    return _fit(inferenceservice, f"-retrain-{n}")
