"""Reporting: the clock, and Events posted in the background (an Event that cannot be posted
is logged, never a reason to redo a reconcile)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from mlops_operator.kube import client as k8s

logger = logging.getLogger(__name__)

COMPONENT = "mlops-operator"
POST_ATTEMPTS = 5
"""Creates of one Event before it is given up (and logged)."""
POST_RETRY_DELAY = 0.5
"""Seconds before the first retry of an Event's create; doubled for each next one."""
POST_RETRY_MAX = 30.0
"""The longest wait before a retry, whatever Retry-After asks."""


def now() -> dt.datetime:
    """The current time in UTC, truncated to seconds like Kubernetes timestamps."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def build_event(
    obj: Mapping[str, Any], type: str, reason: str, message: str, moment: dt.datetime
) -> dict[str, Any]:
    """A core/v1 Event about ``obj``, as ``kubectl describe`` and ``kubectl get events`` show."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": _stamp(moment),
        "lastTimestamp": _stamp(moment),
        "count": 1,
    }


class Events:
    """Posts Events without making a reconcile wait for them."""

    def __init__(self, kube: k8s.Kube) -> None:
        self._kube = kube
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Post one Event about ``obj`` in the background; log it at INFO (WARNING for
        Warning events) so the operator's log tells the same story."""
        meta = obj["metadata"]
        log = logger.warning if type == "Warning" else logger.info
        log("%s %s/%s: %s: %s", obj.get("kind"), meta["namespace"], meta["name"], reason, message)
        event = build_event(obj, type, reason, message, now())
        task = asyncio.create_task(self._post(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        """Create the Event; a transient failure is retried a few times (after the server's
        Retry-After, else a doubling delay), and an Event that already exists — its create
        landed but the answer was lost — is posted."""
        for attempt in range(POST_ATTEMPTS):
            try:
                await self._kube.create(k8s.EVENTS, event["metadata"]["namespace"], event)
                return
            except k8s.Conflict:
                return
            except k8s.Transient as exc:
                if attempt + 1 == POST_ATTEMPTS:
                    logger.warning("could not post Event %s: %s", event["reason"], exc)
                    return
                delay = POST_RETRY_DELAY * 2**attempt
                await asyncio.sleep(min(POST_RETRY_MAX, exc.retry_after or delay))
            except k8s.KubeError as exc:
                logger.warning("could not post Event %s: %s", event["reason"], exc)
                return

    async def drain(self) -> None:
        """Wait for the Events in flight (at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
