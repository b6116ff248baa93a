"""The work queue under a failing API: triggers that arrive while a key backs off wait for
its backoff (and the server's Retry-After), so an object's own events make no retry storm."""

from __future__ import annotations

import asyncio

from mlops_operator.kube import client as k8s
from mlops_operator.kube.queue import Backoff, WorkQueue

KEY = ("default", "cancer")


async def test_triggers_during_a_retry_after_wait_for_it_and_run_once() -> None:
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def reconcile(key: tuple[str, str]) -> None:
        attempts.append(loop.time())
        if len(attempts) == 1:
            raise k8s.Transient(429, "slow down", retry_after=0.3)

    queue = WorkQueue("widgets", reconcile, backoff=Backoff(base=0.01))
    queue.start()
    try:
        queue.add(KEY)
        await queue.wait_idle()
        for _ in range(5):  # the object's own watch events, arriving during the wait
            queue.add(KEY)
            await asyncio.sleep(0.02)
        await queue.wait_idle()
        assert len(attempts) == 1
        due = attempts[0] + 0.3
        while len(attempts) < 2:  # the retry's own timer, not this loop, runs it
            assert loop.time() < due + 2.0, "the retry never ran"
            await asyncio.sleep(0.05)
        assert len(attempts) == 2 and attempts[1] >= due
        assert queue.backoff.failures == {}
    finally:
        await queue.stop()


async def test_a_spec_change_ends_the_wait_at_once() -> None:
    attempts = 0

    async def reconcile(key: tuple[str, str]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise k8s.Transient(503, "unavailable", retry_after=60)

    queue = WorkQueue("widgets", reconcile)
    queue.start()
    try:
        queue.add(KEY)
        await queue.wait_idle()
        queue.forget(KEY)
        queue.add(KEY)
        await queue.wait_idle()
        assert attempts == 2
    finally:
        await queue.stop()
