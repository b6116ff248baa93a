"""The operator's own work follows kopf's peering.

kopf pauses a replica while a peer of higher priority is alive, but what it pauses is its own
machinery: the watch streams and the handlers. The work queues and the monitor are the
operator's: a reconcile queued before a pause would still run during it, from a cache frozen
at the pause, and write beside the active replica. So every reconcile first waits at the
gate, which is open only while kopf lets this replica act, and has let it for ``settle``
seconds: the time for a peer started at the same moment to announce itself (each replica
learns of the others only from their keep-alives) and for kopf's listing after a resume to
refresh the cache.

kopf does not publish its pause state; it is one object (the ``operator_paused`` toggle set)
that kopf hands to its orchestrator. :func:`follow_kopf` wraps that orchestrator to keep a
reference to it, and the gate only reads it. If a kopf release changes that, the operator says
so at start-up and runs without the gate (kopf still pauses its own part)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""How often a reconcile waiting at a closed gate looks again."""


class Paused(Protocol):
    """kopf's pause state: on while any reason to pause holds (a peer of higher priority,
    peering required but its CRD missing)."""

    def is_on(self) -> bool: ...


class Gate:
    """Open while kopf has let this replica act for at least ``settle`` seconds."""

    def __init__(self, settle: float = 0.0) -> None:
        self.settle = settle
        self.paused: Paused | None = None
        """kopf's pause state, once kopf's orchestrator has started (closed until then)."""
        self._open_since: float | None = None
        self._said_paused = False

    def is_open(self, now: float) -> bool:
        """Whether reconciles may run at ``now`` (loop time); notes when it opened."""
        if self.paused is None or self.paused.is_on():
            if self.paused is not None and not self._said_paused:
                logger.info("Reconciles wait: kopf pauses this replica (%s).", _why(self.paused))
                self._said_paused = True
            self._open_since = None
            return False
        self._said_paused = False
        if self._open_since is None:
            self._open_since = now
        return now - self._open_since >= self.settle

    async def wait(self) -> None:
        """Return once the gate is open."""
        loop = asyncio.get_running_loop()
        while not self.is_open(loop.time()):
            await asyncio.sleep(POLL_SECONDS)


def _why(paused: Paused) -> str:
    """The names of kopf's reasons to pause that hold (e.g. ``default@ns``: that peering
    object shows a live peer of higher priority, or none has been read yet)."""
    names = [
        str(getattr(toggle, "name", None))
        for toggle in (paused if isinstance(paused, Iterable) else ())
        if toggle.is_on()
    ]
    return ", ".join(names) or "peering"


def follow_kopf(gate: Gate) -> bool:
    """Make ``gate`` read kopf's pause state (before ``kopf.run``); whether it could."""
    try:
        from kopf._core.reactor import orchestration
    except ImportError:
        orchestration = None  # type: ignore[assignment]
    original = getattr(orchestration, "orchestrator", None)
    if orchestration is None or original is None:
        _unfollowed(gate)
        return False

    async def orchestrator(**kwargs: Any) -> None:
        paused = kwargs.get("operator_paused")
        if paused is None:
            _unfollowed(gate)
        else:
            gate.paused = paused
        await original(**kwargs)

    setattr(orchestration, "orchestrator", orchestrator)  # noqa: B010
    return True


def _unfollowed(gate: Gate) -> None:
    logger.warning(
        "This kopf release does not hand out its pause state: reconciles are not held "
        "while peering pauses this replica."
    )
    gate.paused = _NeverPaused()


class _NeverPaused:
    def is_on(self) -> bool:
        return False
