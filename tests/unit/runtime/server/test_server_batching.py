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
from tests.support import eventually


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


async def test_once_the_last_batchs_clients_are_back_the_batch_does_not_wait_for_the_delay() -> (
    None
):
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=256, max_delay=30.0)
    batcher.start()
    try:
        async with asyncio.timeout(5):  # a wait for the delay would take 30 s a round
            for _ in range(3):  # three clients, each sending again once answered
                await asyncio.gather(*(batcher.submit(rows(1), False) for _ in range(3)))
    finally:
        await batcher.close()
    assert model.batches == [3, 3, 3]


async def test_more_clients_than_last_time_still_join_one_batch() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=256, max_delay=30.0)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(*(batcher.submit(rows(1), False) for _ in range(2)))
            # Five arrive at once: the last batch's size is a floor for the wait, not a cap.
            await asyncio.gather(*(batcher.submit(rows(1), False) for _ in range(5)))
    finally:
        await batcher.close()
    assert model.batches == [2, 5]


class ThreadRecorder(Recorder):
    """A Recorder that also notes which thread each batch was predicted on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def __call__(self, x: np.ndarray, with_proba: bool) -> tuple[Any, Any]:
        self.threads.append(threading.get_ident())
        return super().__call__(x, with_proba)


async def test_a_batch_the_model_answers_quickly_is_predicted_on_the_event_loop() -> None:
    model = ThreadRecorder()
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.0, inline_rows=4)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            small = await batcher.submit(rows(4, 2.0), False)
            large = await batcher.submit(rows(5, 3.0), False)
    finally:
        await batcher.close()
    assert small[0].tolist() == [2.0] * 4 and large[0].tolist() == [3.0] * 5
    loop_thread = threading.get_ident()
    assert model.batches == [4, 5]
    assert model.threads[0] == loop_thread and model.threads[1] != loop_thread


async def test_while_the_prediction_thread_works_a_small_batch_waits_its_turn_there() -> None:
    model = ThreadRecorder()
    gate = threading.Event()
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.0, inline_rows=4)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            busy = asyncio.ensure_future(batcher.on_predict_thread(lambda: gate.wait(5)))
            predicted = asyncio.ensure_future(batcher.submit(rows(1), False))

            async def queued_behind_the_work() -> bool:
                return batcher._on_thread == 2

            await eventually(queued_behind_the_work, timeout=5)
            gate.set()
            await asyncio.gather(busy, predicted)
            await batcher.submit(rows(1), False)  # the thread is idle again: on the loop
    finally:
        await batcher.close()
    loop_thread = threading.get_ident()
    assert model.threads[0] != loop_thread, "never beside work on the prediction thread"
    assert model.threads[1] == loop_thread


async def test_a_failing_request_in_a_batch_on_the_loop_fails_alone() -> None:
    model = Recorder(fail_on=9.0)
    batcher = MicroBatcher(model, max_batch_size=32, max_delay=0.05, inline_rows=32)
    batcher.start()
    try:
        async with asyncio.timeout(5):
            results = await asyncio.gather(
                batcher.submit(rows(1, 1.0), False),
                batcher.submit(rows(1, 9.0), False),
                batcher.submit(rows(1, 2.0), False),
                return_exceptions=True,
            )
    finally:
        await batcher.close()
    assert [r[0].tolist() if isinstance(r, tuple) else str(r) for r in results] == [
        [1.0],
        "bad row",
        [2.0],
    ]
