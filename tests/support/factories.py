"""Factories for the project's resources as a person writes them, and for the artifacts a
trainer leaves in storage."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlops_operator.api.base import API_VERSION

CLASSIFIER = "sklearn.ensemble.RandomForestClassifier"


def trainingjob(name: str, model: str, dataset_uri: str, **spec: Any) -> dict[str, Any]:
    """A TrainingJob of a classifier on ``dataset_uri`` (target column ``target``); keyword
    arguments replace or add spec fields."""
    body: dict[str, Any] = {
        "model": model,
        "dataset": {"uri": dataset_uri, "target": "target"},
        "estimator": {"className": CLASSIFIER, "params": {"n_estimators": 5}},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": body,
    }


def digest_of(content: bytes) -> str:
    """``sha256:<hex>`` as ModelVersions record it."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def modelversion(
    model: str,
    version: int,
    uri: str,
    digest: str,
    *,
    metrics: dict[str, float] | None = None,
    gates: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """A ModelVersion ``<model>-v<version>`` of an artifact directory ``uri``."""
    artifact: dict[str, Any] = {"uri": uri, "digest": digest}
    if endpoint:
        artifact["endpoint"] = endpoint
    spec: dict[str, Any] = {
        "model": model,
        "version": version,
        "task": "classification",
        "artifact": artifact,
        "metrics": metrics if metrics is not None else {"accuracy": 0.95},
        "gates": gates or [],
    }
    if source:
        spec["source"] = source
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-v{version}"},
        "spec": spec,
    }


def inferenceservice(name: str, model: str, **spec: Any) -> dict[str, Any]:
    """An InferenceService of ``model`` serving ``latest`` on one replica; keyword arguments
    replace or add spec fields."""
    body: dict[str, Any] = {"model": model, "version": "latest", "replicas": 1}
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": body,
    }


def accuracy_policy(**policy: Any) -> dict[str, Any]:
    """A monitoring policy ``online-accuracy`` (builtin accuracy, min 0.8, one breach
    degrades, no minimum of samples); keyword arguments replace fields."""
    body: dict[str, Any] = {
        "name": "online-accuracy",
        "builtin": "accuracy",
        "min": 0.8,
        "minSamples": 0,
        "failureLimit": 1,
    }
    body.update(policy)
    return body


def trainer_output(
    model_bytes: bytes, metrics: dict[str, float], task: str = "classification", **extra: Any
) -> dict[str, bytes]:
    """The files a trainer writes in its run directory, by name, manifest included
    (``extra`` added to it)."""
    manifest = {
        "digest": digest_of(model_bytes),
        "metrics": metrics,
        "task": task,
        "frameworkVersion": "1.5.0",
        **extra,
    }
    return {
        "model.joblib": model_bytes,
        "metrics.json": json.dumps(metrics).encode(),
        "reference.json": b"{}",
        "manifest.json": json.dumps(manifest).encode(),
    }
