"""Pod overrides: where and as whom the training and model-server pods run. The same type is
the ``podSpec`` of a TrainingJob and an InferenceService and the operator's defaults for
each (``MLOPS_TRAINING_POD``, ``MLOPS_SERVING_POD``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mlops_operator.api.base import ApiModel

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes DNS-1123 subdomain: the names of ServiceAccounts, Secrets, PriorityClasses."""

ObjectName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]


class Toleration(ApiModel):
    """A toleration of the pods, as in a Kubernetes pod spec: lets them schedule onto nodes
    with a matching taint."""

    key: str | None = None
    """Taint key to match; empty with operator ``Exists`` matches every taint."""

    operator: Literal["Exists", "Equal"] | None = None
    """``Equal`` (the default) matches the taint's value; ``Exists`` any value (then
    ``value`` must be empty)."""

    value: str | None = None
    """Taint value to match with operator ``Equal``."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches every effect."""

    toleration_seconds: int | None = None
    """With effect ``NoExecute``: how long the pod stays bound after the taint appears."""


class LocalObjectReference(ApiModel):
    """A reference to an object in the resource's own namespace."""

    name: ObjectName
    """Name of the object."""


class PodOverrides(ApiModel):
    """Where and as whom the pods run. Each field set here replaces the operator's default
    for it (labels and annotations are merged, key by key); the labels and annotations the
    operator sets itself (``mlops.dev/*``, ``app.kubernetes.io/managed-by``,
    ``app.kubernetes.io/component``, ``prometheus.io/*``) always keep their values."""

    service_account_name: ObjectName | None = None
    """ServiceAccount of the pods, e.g. one annotated for IRSA or Workload Identity so they
    reach S3 without a credentials Secret."""

    node_selector: dict[str, str] | None = None
    """Node labels the pods must run on, e.g. ``{node.kubernetes.io/instance-type: g5.xlarge}``."""

    tolerations: list[Toleration] | None = None
    """Taints the pods tolerate."""

    affinity: dict[str, Any] | None = None
    """Node, pod and anti-pod affinity, as in a Kubernetes pod spec (``nodeAffinity``,
    ``podAffinity``, ``podAntiAffinity``)."""

    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets for pulling the runtime image from a private registry."""

    priority_class_name: ObjectName | None = None
    """PriorityClass of the pods."""

    labels: dict[str, str] | None = None
    """Extra labels on the pods."""

    annotations: dict[str, str] | None = None
    """Extra annotations on the pods."""


def merge_overrides(default: PodOverrides | None, spec: PodOverrides | None) -> PodOverrides:
    """The overrides in force: the spec's field where it sets one, the default's otherwise;
    labels and annotations merged key by key, the spec's value winning."""
    base = default or PodOverrides()
    if spec is None:
        return base
    update = {k: v for k in PodOverrides.model_fields if (v := getattr(spec, k)) is not None}
    merged = base.model_copy(update=update)
    for field in ("labels", "annotations"):
        ours, theirs = getattr(base, field), getattr(spec, field)
        if ours and theirs is not None:
            setattr(merged, field, {**ours, **theirs})
    return merged
