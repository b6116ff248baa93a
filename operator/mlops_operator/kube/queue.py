"""The work queue: triggers mark an object's key dirty, one reconcile per key runs at a time,
and a failed reconcile is retried with backoff until it succeeds or the spec changes.

The same contract as client-go's rate-limited workqueue: a key added while it is being
reconciled is reconciled once more afterwards (never twice at once); a key added many times
while waiting is reconciled once; a key whose reconcile raised is added again after
``base * 2**(failures-1)`` seconds (capped), or after the server's Retry-After when longer.
Unlike a bare workqueue, a trigger that arrives while a key backs off waits for the backoff
(an object's own watch events would otherwise retry it at once, and each failure would double
its delay: a retry storm that also ignores Retry-After); a spec change ends the wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from mlops_operator.kube import client as k8s

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""An object's namespace and name."""

Reconcile = Callable[[Key], Awaitable[float | None]]
"""Reconcile one object; the seconds until it wants to be looked at again, if any."""


@dataclass
class Backoff:
    """Exponential backoff per key: ``base * 2**(failures-1)`` seconds, at most ``cap``."""

    base: float = 0.5
    cap: float = 300.0
    failures: dict[Hashable, int] = field(default_factory=dict)

    def next_delay(self, key: Hashable, at_least: float | None = None) -> float:
        """Count one more failure of ``key``; the delay before its next attempt."""
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        delay = min(self.cap, self.base * float(2 ** (n - 1)))
        return max(delay, at_least or 0.0)

    def forget(self, key: Hashable) -> None:
        """``key`` succeeded, or its spec changed: the next failure starts from ``base``."""
        self.failures.pop(key, None)


class WorkQueue:
    """Dirty keys of one kind, reconciled by ``workers`` tasks, one reconcile per key at a time."""

    def __init__(
        self,
        kind: str,
        reconcile: Reconcile,
        *,
        workers: int = 8,
        backoff: Backoff | None = None,
        on_error: Callable[[str], None] | None = None,
        expected: tuple[type[Exception], ...] = (k8s.KubeError,),
    ) -> None:
        self.kind = kind
        self._expected = expected
        """Failures that may heal (API, storage): logged in one line. Anything else is a bug
        and logged with its traceback."""
        self._reconcile = reconcile
        self._workers = workers
        self.backoff = backoff or Backoff()
        self._on_error = on_error
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._not_before: dict[Key, float] = {}
        """Keys backing off after a failure: the loop time before which none is retried."""
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: Key) -> None:
        """Mark ``key`` dirty: it is reconciled as soon as a worker is free, or when its
        backoff ends if it is backing off."""
        wait = self._not_before.get(key, 0.0) - asyncio.get_running_loop().time()
        if wait > 0:
            self.add_after(key, wait)
            return
        self._not_before.pop(key, None)
        self._cancel_timer(key)
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key not in self._processing:
            self._ready.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Mark ``key`` dirty in ``delay`` seconds (an earlier pending timer wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def forget(self, key: Key) -> None:
        """The object's spec changed: its next failure backs off from the start again, and a
        pending retry may run at once."""
        self.backoff.forget(key)
        self._not_before.pop(key, None)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._not_before.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: Key) -> None:
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    async def wait_idle(self) -> None:
        """Until no key is dirty or being reconciled (timers may still be pending)."""
        await self._idle.wait()

    def start(self) -> None:
        """Start the workers on the running loop."""
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self.kind}-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        """Stop the workers and drop pending timers."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await self._run_one(key)
            finally:
                self._processing.discard(key)
                if key in self._dirty and key in self._not_before:
                    # Dirtied while failing: it waits for its backoff like any trigger.
                    self._dirty.discard(key)
                    self.add(key)
                if key in self._dirty:
                    self._ready.put_nowait(key)
                elif not self._dirty and not self._processing:
                    self._idle.set()

    async def _run_one(self, key: Key) -> None:
        namespace, name = key
        try:
            again = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry_after = exc.retry_after if isinstance(exc, k8s.Transient) else None
            delay = self.backoff.next_delay(key, retry_after)
            if self._on_error is not None:
                self._on_error(self.kind)
            if isinstance(exc, self._expected):
                logger.warning(
                    "%s %s/%s: %s; retrying in %.1fs", self.kind, namespace, name, exc, delay
                )
            else:  # a bug: say where
                logger.exception(
                    "%s %s/%s: reconcile failed; retrying in %.1fs",
                    self.kind,
                    namespace,
                    name,
                    delay,
                )
            self._not_before[key] = asyncio.get_running_loop().time() + delay
            self.add_after(key, delay)
            return
        self.backoff.forget(key)
        self._not_before.pop(key, None)
        if again is not None:
            self.add_after(key, again)
