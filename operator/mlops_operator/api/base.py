"""Base model and shared types for every resource: camelCase on the wire, docs from docstrings."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "mlops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes DNS-1123 label: lower-case alphanumerics and '-'."""


class ApiModel(BaseModel):
    """Every spec type: camelCase aliases, field docstrings become CRD descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-able dict as it goes to the API server (camelCase, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Status types tolerate fields written by newer operator versions, and validate what
    controllers assign (e.g. a timestamp string copied from a Job becomes a datetime)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class SecretKeyRef(ApiModel):
    """A reference to a Secret in the resource's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret."""


QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""A non-negative Kubernetes resource quantity (``500m``, ``2``, ``1Gi``, ``1e3``)."""

Quantity = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY, max_length=64)]


class ResourceRequirements(ApiModel):
    """CPU and memory for the pod's container, as in a Kubernetes container spec."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources, e.g. ``{cpu: 500m, memory: 1Gi}``."""

    limits: dict[str, Quantity] | None = None
    """Maximum resources, e.g. ``{cpu: "2", memory: 2Gi}``; a request above its limit is
    rejected by the API server and reported as ``InvalidSpec``."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """One aspect of the resource's state, with the same fields as ``metav1.Condition``."""

    type: str
    """Kind of condition, e.g. ``Ready``."""

    status: ConditionStatus
    """``True``, ``False`` or ``Unknown``."""

    reason: str
    """Machine-readable CamelCase reason for the last transition."""

    message: str = ""
    """A sentence a person can act on."""

    last_transition_time: dt.datetime
    """When ``status`` last changed."""

    observed_generation: int | None = None
    """The ``metadata.generation`` the condition was computed from."""


def set_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: dt.datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Return ``conditions`` with one condition set; ``lastTransitionTime`` moves only when
    ``status`` changes, like ``meta.SetStatusCondition``."""
    result: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type:
            result.append(cond)
            continue
        found = True
        changed = cond.status != status
        result.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if changed else cond.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        result.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    return result


def get_condition(conditions: list[Condition], type: str) -> Condition | None:
    """The condition of the given type, if present."""
    return next((c for c in conditions if c.type == type), None)


class HasConditions(Protocol):
    """A status with conditions."""

    conditions: list[Condition]


class StatusDraft:
    """A status a planner is deciding: every condition set at ``now`` for ``generation``, and
    the Events (type, reason, message) that report it. The one way conditions are set."""

    def __init__(self, status: HasConditions, generation: int | None, now: dt.datetime) -> None:
        self.status = status
        self.generation = generation
        self.now = now
        self.events: list[tuple[str, str, str]] = []

    def cond(self, type: str, value: bool | None, reason: str, message: str) -> None:
        """Set one condition (``None`` is Unknown); its transition time moves only when its
        value does."""
        state: ConditionStatus = "Unknown" if value is None else "True" if value else "False"
        self.status.conditions = set_condition(
            self.status.conditions,
            type,
            state,
            reason,
            message,
            now=self.now,
            generation=self.generation,
        )

    def event(self, type: str, reason: str, message: str) -> None:
        """Report something with an Event."""
        self.events.append((type, reason, message))

    def cond_with_event(
        self, type: str, value: bool, reason: str, message: str, event_type: str
    ) -> None:
        """Set a condition, and post an Event only when its reason or message changed."""
        previous = get_condition(self.status.conditions, type)
        self.cond(type, value, reason, message)
        if previous is None or (previous.reason, previous.message) != (reason, message):
            self.event(event_type, reason, message)
