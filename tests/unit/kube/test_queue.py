"""The work queue: one reconcile per key at a time, coalescing, retries with backoff."""

from __future__ import annotations

import asyncio

from mlops_operator.kube import client as k8s
from mlops_operator.kube.queue import Backoff, Key, WorkQueue


async def test_a_key_added_many_times_while_waiting_is_reconciled_once() -> None:
    seen: list[Key] = []

    async def reconcile(key: Key) -> float | None:
        seen.append(key)
        return None

    queue = WorkQueue("things", reconcile, workers=2)
    for _ in range(5):
        queue.add(("ns", "a"))
    queue.add(("ns", "b"))
    queue.start()
    await queue.wait_idle()
    await queue.stop()
    assert sorted(seen) == [("ns", "a"), ("ns", "b")]


async def test_a_key_is_never_reconciled_twice_at_once_and_runs_again_if_marked_meanwhile() -> None:
    running = 0
    most = 0
    calls = 0
    release = asyncio.Event()
    started = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        nonlocal running, most, calls
        calls += 1
        running += 1
        most = max(most, running)
        if calls == 1:
            started.set()
            await release.wait()
        running -= 1
        return None

    queue = WorkQueue("things", reconcile, workers=4)
    queue.start()
    queue.add(("ns", "a"))
    await started.wait()
    queue.add(("ns", "a"))  # dirty again while it runs
    queue.add(("ns", "a"))
    release.set()
    await queue.wait_idle()
    await queue.stop()
    assert most == 1
    assert calls == 2  # once more after the first, never three times


async def test_a_failing_reconcile_is_retried_with_growing_delays_until_it_succeeds() -> None:
    attempts: list[float] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        attempts.append(loop.time())
        if len(attempts) < 4:
            raise k8s.Transient(503, "unavailable")
        done.set()
        return None

    queue = WorkQueue("things", reconcile, backoff=Backoff(base=0.01, cap=1.0))
    queue.start()
    queue.add(("ns", "a"))
    await asyncio.wait_for(done.wait(), 5)
    await queue.stop()
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(attempts) == 4
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.04
    assert queue.backoff.failures == {}  # success forgets the failures


def test_backoff_doubles_to_its_cap_and_honours_retry_after() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    delays = [backoff.next_delay("k") for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.next_delay("k", at_least=30.0) == 30.0
    backoff.forget("k")
    assert backoff.next_delay("k") == 0.5


async def test_a_requeue_after_runs_the_key_again_and_an_earlier_timer_wins() -> None:
    seen: list[Key] = []
    again = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        seen.append(key)
        if len(seen) == 2:
            again.set()
        return 0.01 if len(seen) == 1 else None

    queue = WorkQueue("things", reconcile)
    queue.start()
    queue.add_after(("ns", "a"), 30.0)
    queue.add_after(("ns", "a"), 0.0)  # now: replaces the later timer
    await asyncio.wait_for(again.wait(), 5)
    await queue.stop()
    assert seen == [("ns", "a"), ("ns", "a")]
