"""Pod pieces shared by every workload the operator builds. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_operator.api.base import ResourceRequirements
from mlops_operator.api.pod import PodOverrides
from mlops_operator.artifacts.storage import ResolvedStorage

RUNTIME_UID = 65532
"""Numeric non-root user of the runtime image."""


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


def resources(spec: ResourceRequirements | None, default: dict[str, Any]) -> dict[str, Any]:
    """The container's resources: the spec's, or the given defaults."""
    if spec is None:
        return default
    return spec.model_dump(mode="json", exclude_none=True)


def storage_env(storage: ResolvedStorage) -> list[dict[str, Any]]:
    """The standard AWS variables for the S3 endpoint; keys only as Secret references."""
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


OVERRIDABLE_FIELDS = (
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "imagePullSecrets",
    "priorityClassName",
)
"""Pod spec fields a ``podSpec`` (or the operator's defaults) may set. One that goes away is
removed from an existing child by the patch against what was last applied
(:mod:`mlops_operator.kube.apply`), like any field the operator stops setting."""


def apply_overrides(
    template: dict[str, Any],
    overrides: PodOverrides,
    own_labels: Mapping[str, str],
    own_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``template`` (a pod template) with the overrides applied; the operator's own labels and
    annotations are laid over the user's, so selectors and scraping can never be broken."""
    wire = overrides.to_wire()
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(overrides.labels or {}), **own_labels}
    annotations = {**(overrides.annotations or {}), **(own_annotations or {})}
    if annotations:
        meta["annotations"] = annotations
    spec = template.setdefault("spec", {})
    for field in OVERRIDABLE_FIELDS:
        if field in wire:
            spec[field] = wire[field]
    return template
