"""Shared state of the running operator: settings, the API client, watch state, the work
queues, Event posting, locks and artifact stores. Memory holds only what can be rebuilt from
the cluster: caches, queues, the latest measurements."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_operator.kube import client as k8s
from mlops_operator.kube.apply import write_status
from mlops_operator.kube.cache import Cache
from mlops_operator.kube.queue import WorkQueue
from mlops_operator.kube.status import Events
from mlops_operator.peering import Gate
from mlops_operator.settings import Settings

if TYPE_CHECKING:
    from mlops_operator.artifacts.store import ArtifactStore
    from mlops_operator.monitoring.aggregate import Snapshot
    from mlops_operator.monitoring.daemon import Monitor
    from mlops_operator.monitoring.judge import Measured


@dataclass
class Context:
    """What every reconcile needs; one per operator process, kept in kopf's ``memo``."""

    settings: Settings
    kube: k8s.Kube
    cache: Cache = field(default_factory=Cache)
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    """One work queue per kind, by plural."""
    events: Events | None = None
    _locks: collections.defaultdict[Hashable, asyncio.Lock] = field(
        default_factory=lambda: collections.defaultdict(asyncio.Lock)
    )
    stores: dict[Hashable, ArtifactStore] = field(default_factory=dict)
    """Artifact stores by endpoint and credentials (see ``artifacts.io.open_store``)."""
    measured: dict[tuple[str, str], Measured] = field(default_factory=dict)
    """The latest measurement of each monitored service, waiting for its reconcile."""
    snapshots: dict[tuple[str, str], tuple[int, Snapshot]] = field(default_factory=dict)
    """Counters of each service's last scrape (by served version), for rates."""
    monitor: Monitor | None = None
    """Schedules the measurements of monitored services."""
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """What each object last looked like to the triggers that fan out (see ``watches``)."""
    gate: Gate | None = None
    """Holds every reconcile while kopf's peering pauses this replica (none: never held)."""
    unanswered: dict[tuple[str, str, str], set[tuple[str, str, str]]] = field(default_factory=dict)
    """Events already posted for a status write that got no answer, by object: not posted
    again when the retry plans them once more (see :meth:`report`)."""

    def lock(self, key: Hashable) -> asyncio.Lock:
        """A lock per key, e.g. one registration per model at a time."""
        return self._locks[key]

    def enqueue(self, plural: str, namespace: str, name: str, delay: float = 0.0) -> None:
        """Mark an object dirty (after ``delay`` seconds)."""
        queue = self.queues.get(plural)
        if queue is not None:
            queue.add_after((namespace, name), delay)

    async def report(
        self,
        res: k8s.Resource,
        obj: dict[str, Any],
        status: dict[str, Any],
        events: list[tuple[str, str, str]],
    ) -> None:
        """Write ``obj``'s planned status, then post the Events of the change it records.

        A write the server refused is retried by the next reconcile, which plans the same
        Events again: they are posted then. A write that got no answer may have landed, and
        then the retry finds nothing left to report — so its Events are posted at once and
        remembered, and a retry that plans them again (the write had not landed) skips them.
        """
        meta = obj["metadata"]
        key = (res.plural, meta["namespace"], meta["name"])
        posted = self.unanswered.pop(key, set())
        try:
            await write_status(self.kube, self.cache, res, obj, status)
        except k8s.Transient as exc:
            if exc.status == 0:
                for event in events:
                    if event not in posted:
                        self.post(obj, *event)
                posted |= set(events)
            if posted:
                self.unanswered[key] = posted
            raise
        written = self.cache.get(res, meta["namespace"], meta["name"]) or obj
        for event in events:
            if event not in posted:
                self.post(written, *event)

    def post(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        """Post an Event about ``obj`` (logged too)."""
        if self.events is not None:
            self.events.post(obj, type, reason, message)


def get_context(memo: Any) -> Context:
    """The context stored in kopf's memo at start-up."""
    ctx = memo.get("ctx") if hasattr(memo, "get") else getattr(memo, "ctx", None)
    if not isinstance(ctx, Context):
        raise RuntimeError("the operator context was not initialised at start-up")
    return ctx
