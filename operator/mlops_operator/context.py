"""Shared state of the running operator: settings, the API client, locks."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from mlops_operator import metrics
from mlops_operator.artifacts.store import ArtifactStore
from mlops_operator.kube import client as k8s
from mlops_operator.settings import Settings


@dataclass
class Context:
    """What every handler needs; one per operator process, kept in kopf's ``memo``."""

    settings: Settings
    kube: k8s.Kube
    _locks: collections.defaultdict[Hashable, asyncio.Lock] = field(
        default_factory=lambda: collections.defaultdict(asyncio.Lock)
    )
    stores: dict[Hashable, ArtifactStore] = field(default_factory=dict)
    """Artifact stores by endpoint and credentials (see ``controllers.storage.open_store``)."""
    version_digests: dict[tuple[str, str], str] = field(default_factory=dict)
    """What each ModelVersion last looked like to the services (see ``modelversion_event``)."""

    def lock(self, key: Hashable) -> asyncio.Lock:
        """A lock per key: one reconcile of an object, one registration per model, at a time."""
        return self._locks[key]


class Requeue(Exception):
    """A reconcile could not finish (storage not reachable yet, a number taken): run it
    again after ``delay`` seconds. Handlers turn it into ``kopf.TemporaryError``."""

    def __init__(self, delay: float, message: str) -> None:
        super().__init__(message)
        self.delay = delay


def get_context(memo: Any) -> Context:
    """The context stored in kopf's memo at start-up."""
    ctx = memo.get("ctx") if hasattr(memo, "get") else getattr(memo, "ctx", None)
    if not isinstance(ctx, Context):
        raise RuntimeError("the operator context was not initialised at start-up")
    return ctx


Step = Callable[[Context, dict[str, Any]], Awaitable[None]]


async def reconcile_object(
    ctx: Context, res: k8s.Resource, namespace: str, name: str, step: Step
) -> None:
    """Run ``step`` on the object's current state, one reconcile of it at a time; an object
    that is gone or being deleted is left alone."""
    async with ctx.lock((res.plural, namespace, name)):
        body = await ctx.kube.get_or_none(res, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        metrics.RECONCILES.labels(res.plural).inc()
        try:
            await step(ctx, body)
        except Exception:
            metrics.ERRORS.labels(res.plural).inc()
            raise
