"""Writing status: conditions merged in code (merge-patch replaces lists), one patch a write."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import kopf
from pydantic import BaseModel

from mlops_operator.api.base import Condition, ConditionStatus, set_condition
from mlops_operator.kube import client as k8s


def now() -> dt.datetime:
    """The current time in UTC, truncated to seconds like Kubernetes timestamps."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def with_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
) -> list[Condition]:
    """``set_condition`` with the current time."""
    return set_condition(
        conditions, type, status, reason, message, now=now(), generation=generation
    )


def dump(model: BaseModel) -> dict[str, Any]:
    """A status model as a merge-patch body: camelCase, JSON types."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def write(
    kube: k8s.Kube,
    res: k8s.Resource,
    namespace: str,
    name: str,
    status: BaseModel,
    *,
    clear: tuple[str, ...] = (),
) -> None:
    """Merge-patch the whole status; ``clear`` names fields to delete (set to null)."""
    body = dump(status)
    for key in clear:
        body[key] = None
    await kube.patch_status(res, namespace, name, body)


def event(body: dict[str, Any], type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about the object (queued; kopf posts it in the background)."""
    kopf.event(kopf.Body(cast(Any, body)), type=type, reason=reason, message=message)
