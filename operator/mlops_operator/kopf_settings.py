"""kopf settings that suit structural CRDs; in a module of their own (no handlers), so the
benchmark's empty operator applies exactly the same ones."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Final

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps a diff-base only for handlers that react to changes (``on.create``,
    ``on.update``, ``on.field``, timers, daemons). The operator registers none of them — its
    triggers are ``on.event`` handlers and indexes, and the reconciles decide from the whole
    object — so the deep copy of every object on every event that kopf makes to build one
    is skipped (a fifth of the operator's CPU in a burst)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


API_RETRY_DELAYS: Final = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
"""Seconds between the first attempts of one of kopf's API requests (discovery, listings,
watches) that the API answered with a 5xx, a 429 or not at all; then ``API_RETRY_CAP``."""
API_RETRY_CAP: Final = 15.0


class EndlessBackoffs:
    """kopf's delays between attempts of one request, with no last attempt. kopf's own
    default gives up after 9 attempts (54 s): a listing or a discovery that fails that long
    stops the whole operator at start-up, and a watch that fails that long ends for good, so
    an API outage of a minute left every object as it was until someone restarted the
    operator. Like client-go's informers, the operator waits for the API instead. A fresh
    iterator per request: kopf iterates this once per request."""

    def __iter__(self) -> Iterator[float]:
        yield from API_RETRY_DELAYS
        while True:
            yield API_RETRY_CAP


def apply(settings: kopf.OperatorSettings, resync_seconds: float = 300) -> None:
    """Set the operator's kopf settings in place; watches re-list every ``resync_seconds``."""
    # A structural schema prunes unknown status fields: kopf's bookkeeping goes to annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="mlops.dev")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = "mlops.dev/finalizer"
    settings.posting.level = logging.WARNING
    # Re-list every watch regularly: a silently dropped connection never stalls the operator,
    # and every object comes again as an event, which is the periodic resync of every object.
    settings.watching.server_timeout = resync_seconds
    settings.watching.client_timeout = resync_seconds + 30
    settings.watching.connect_timeout = 10
    settings.networking.error_backoffs = EndlessBackoffs()
