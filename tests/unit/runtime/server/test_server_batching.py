"""Micro-batching: concurrent requests share one predict call, big ones go alone, and a
failing request fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import numpy as np
import pytest

from mlops_operator.runtime.server.batching import MicroBatcher, Pending, take_batch


def rows(n: int, value: float = 1.0) -> np.ndarray:
    return np.full((n, 2), value)


class Recorder:
    """A fake model predicting each row's first value; records batch sizes."""

    def __init__(self, fail_on: float | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on
        self.gate = gate

    def __call__(self, x: np.ndarray, with_proba: bool) -> tuple[Any, Any]:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(len(x))
        if self.fail_on is not None and (x[:, 0] == self.fail_on).any():
            raise ValueError("bad row")
        return x[:, 0].copy(), (np.column_stack([x[:, 0], -x[:, 0]]) if with_proba else None)


async def pending(n: int, done: bool = False) -> Pending:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if done:
        future.cancel()
    return Pending(rows(n), False, future)


async def test_take_batch_fills_up_to_the_limit_and_never_splits() -> None:
    queue = deque(
        [await pending(3), await pending(4, done=True), await pending(2), await pending(4)]
    )
    batch: list[Pending] = []
    assert take_batch(queue, batch, 0, 6) == 5
    assert [p.size for p in batch] == [3, 2]
    assert [p.size for p in queue] == [4]

    big = deque([await pending(50), await pending(1)])
    batch = []
    assert take_batch(big, batch, 0, 32) == 50, "an oversized request goes alone"
    assert len(big) == 1


async def test_concurrent_requests_share_one_predict_and_get_their_own_rows() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.05)
    batcher.start()
    try:
        results = await asyncio.gather(
            *(batcher.submit(rows(i + 1, float(i)), with_proba=i == 2) for i in range(5))
        )
    finally:
        await batcher.close()
    assert model.batches == [15]
    for i, (predictions, _) in enumerate(results):
        assert predictions.tolist() == [float(i)] * (i + 1)
    assert results[2][1] is not None and results[2][1].shape == (3, 2)


async def test_a_full_batch_does_not_wait_for_the_delay() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=4, max_delay=30.0)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(*(batcher.submit(rows(1), False) for _ in range(8)))
    finally:
        await batcher.close()
    assert model.batches == [4, 4]


async def test_requests_arriving_during_a_predict_form_the_next_batch() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)
    batcher = MicroBatcher(model, max_batch_size=100, max_delay=0.0)
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.submit(rows(1), False))
        await asyncio.sleep(0.05)  # the first batch is now stuck in predict
        rest = [asyncio.ensure_future(batcher.submit(rows(1), False)) for _ in range(10)]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *rest)
    finally:
        await batcher.close()
    assert model.batches == [1, 10]


async def test_a_failing_request_fails_alone() -> None:
    model = Recorder(fail_on=99.0)
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.05)
    batcher.start()
    try:
        good, bad = await asyncio.gather(
            batcher.submit(rows(2, 1.0), False),
            batcher.submit(rows(1, 99.0), False),
            return_exceptions=True,
        )
    finally:
        await batcher.close()
    assert isinstance(bad, ValueError)
    assert not isinstance(good, BaseException) and good[0].tolist() == [1.0, 1.0]
    assert model.batches == [3, 2, 1]


async def test_the_hook_sees_every_batch_and_its_failure_costs_no_prediction() -> None:
    seen: list[int] = []

    def hook(x: np.ndarray, predictions: Any) -> None:
        seen.append(len(x))
        raise RuntimeError("metrics are broken")

    batcher = MicroBatcher(Recorder(), max_batch_size=32, max_delay=0.0, on_batch=hook)
    batcher.start()
    try:
        predictions, _ = await batcher.submit(rows(3), False)
        unbatched = await batcher.predict_unbatched(rows(2))
    finally:
        await batcher.close()
    assert predictions.tolist() == [1.0] * 3
    assert unbatched.tolist() == [1.0] * 2
    assert seen == [3], "feedback rows are not live traffic"


async def test_closing_fails_waiting_requests() -> None:
    gate = threading.Event()
    batcher = MicroBatcher(Recorder(gate=gate), max_batch_size=1, max_delay=0.0)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(rows(1), False))
    second = asyncio.ensure_future(batcher.submit(rows(1), False))
    await asyncio.sleep(0.02)
    await batcher.close()
    gate.set()
    with pytest.raises(RuntimeError, match="shutting down"):
        await second
    first.cancel()


async def test_a_lone_request_does_not_wait_for_company() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=30.0)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            await batcher.submit(rows(1), False)
            await batcher.submit(rows(1), False)
    finally:
        await batcher.close()
    assert model.batches == [1, 1], "a sequential client pays no batching delay"


async def test_under_concurrent_load_the_batcher_waits_for_stragglers() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.5)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(batcher.submit(rows(1), False), batcher.submit(rows(1), False))
            first = asyncio.ensure_future(batcher.submit(rows(1), False))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(batcher.submit(rows(1), False))
            await asyncio.gather(first, second)
    finally:
        await batcher.close()
    assert model.batches == [2, 2]
