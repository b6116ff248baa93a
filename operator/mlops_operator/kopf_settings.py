"""kopf settings that suit structural CRDs; in a module of their own (no handlers), so the
benchmark's empty operator applies exactly the same ones."""

from __future__ import annotations

import logging

import kopf


def apply(settings: kopf.OperatorSettings) -> None:
    """Set the operator's kopf settings in place."""
    # A structural schema prunes unknown status fields: kopf's bookkeeping goes to annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="mlops.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="mlops.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "mlops.dev/finalizer"
    settings.posting.level = logging.WARNING
    # Reconnect watches regularly so a silently dropped connection never stalls the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
