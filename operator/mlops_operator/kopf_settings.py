"""kopf settings that suit structural CRDs; in a module of their own (no handlers), so the
benchmark's empty operator applies exactly the same ones."""

from __future__ import annotations

import logging

import kopf


def apply(settings: kopf.OperatorSettings, resync_seconds: float = 300) -> None:
    """Set the operator's kopf settings in place; watches re-list every ``resync_seconds``."""
    # A structural schema prunes unknown status fields: kopf's bookkeeping goes to annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="mlops.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="mlops.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "mlops.dev/finalizer"
    settings.posting.level = logging.WARNING
    # Re-list every watch regularly: a silently dropped connection never stalls the operator,
    # and every object comes again as an event, which is the periodic resync of every object.
    settings.watching.server_timeout = resync_seconds
    settings.watching.client_timeout = resync_seconds + 30
    settings.watching.connect_timeout = 10
