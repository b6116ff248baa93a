"""kopf settings that suit structural CRDs; in a module of their own (no handlers), so the
benchmark's empty operator applies exactly the same ones."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

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
