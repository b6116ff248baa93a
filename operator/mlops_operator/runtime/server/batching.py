"""Adaptive micro-batching: concurrent requests become one ``predict`` call.

Requests append their rows to a queue. One batcher task takes everything waiting, up to
``max_batch_size`` rows; only when that is less than a full batch does it wait, at most
``max_delay`` seconds, for more. Under load the queue refills while the previous batch is
predicted, so batches grow on their own and nobody waits; when idle a lone request pays at
most the delay. Predictions run on one dedicated thread, off the event loop, which keeps
parsing and answering requests meanwhile; except a batch small enough for the model to
answer within a few hundred microseconds (``inline_rows``, which the model measures at load),
which is predicted on the event loop itself when nothing runs on that thread: handing it to
the thread and back would cost more than the prediction (two wake-ups and a context switch,
~100 µs).

The wait is only worth it under concurrent load: it gives the event loop time to take in the
requests that arrived while the last batch was predicted. A request that comes alone after
a batch of one (a sequential client, or a trickle) goes straight to ``predict``, so light
traffic pays no delay at all. And the wait ends as soon as the batch holds as many requests
as the last one did: the clients just answered are back, and under a steady load nobody else
is coming (32 clients each waiting for their answer send 32 requests, not 256 rows), so
waiting out the delay for a row count that will not come only adds the delay to every
request. A batch that grows beyond the last one still does: what arrived while it was being
predicted joins it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.server.protocol import Rows

logger = logging.getLogger(__name__)

Predictions = npt.NDArray[Any]
PredictFn = Callable[[Rows, bool], tuple[Predictions, Rows | None]]
BatchHook = Callable[[Rows, Predictions], None]


@dataclass
class Pending:
    """One request's rows waiting for a batch."""

    rows: Rows
    with_proba: bool
    future: asyncio.Future[tuple[Predictions, Rows | None]]

    @property
    def size(self) -> int:
        """Rows in this request."""
        return int(self.rows.shape[0])


def take_batch(queue: deque[Pending], batch: list[Pending], rows: int, max_rows: int) -> int:
    """Move waiting requests from ``queue`` into ``batch`` while they fit in ``max_rows``.

    A request larger than ``max_rows`` still goes alone into an empty batch (it is never
    split). Requests whose caller went away are dropped. Returns the batch's row count.
    """
    while queue:
        head = queue[0]
        if head.future.done():
            queue.popleft()
            continue
        if batch and rows + head.size > max_rows:
            break
        queue.popleft()
        batch.append(head)
        rows += head.size
    return rows


T = TypeVar("T")


class MicroBatcher:
    """Collects concurrent requests into batches for ``predict``; see the module docstring."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int,
        max_delay: float,
        on_batch: BatchHook | None = None,
        inline_rows: int = 0,
    ) -> None:
        self._predict = predict
        self._inline_rows = inline_rows
        self._on_thread = 0
        """Calls handed to the prediction thread and not yet back: while there is one, a
        batch does not run on the loop (the batch hook's state is never touched by two
        threads at once)."""
        self._max_rows = max_batch_size
        self._max_delay = max_delay
        self._on_batch = on_batch
        self._queue: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task[None] | None = None
        self._last_requests = 0
        """Requests in the last batch: more than one is the sign of concurrent load that makes
        waiting for a fuller batch pay, and that many back ends the wait."""

    def start(self) -> None:
        """Start the batcher task on the running loop."""
        self._task = asyncio.create_task(self._loop(), name="batcher")

    async def close(self) -> None:
        """Stop batching; requests still waiting fail."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=False)

    async def on_predict_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the prediction thread, between batches (state it shares with the
        batch hook needs no lock)."""
        return await self._thread(fn)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        self._on_thread += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._on_thread -= 1

    async def submit(self, rows: Rows, with_proba: bool) -> tuple[Predictions, Rows | None]:
        """Predictions (and probabilities, if asked) for ``rows``, computed in some batch."""
        future: asyncio.Future[tuple[Predictions, Rows | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(Pending(rows, with_proba, future))
        self._arrived.set()
        return await future

    async def predict_unbatched(self, rows: Rows) -> Predictions:
        """Predictions for ``rows`` on the prediction thread, outside the batches and without
        the batch hook (for labelled rows sent as feedback, which are not live traffic)."""
        predictions, _ = await self._thread(self._predict, rows, False)
        return predictions

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            batch: list[Pending] = []
            rows = take_batch(self._queue, batch, 0, self._max_rows)
            if not batch:
                continue
            expected = self._last_requests
            if rows < self._max_rows and self._max_delay > 0 and expected > 1:
                deadline = loop.time() + self._max_delay
                # A request left in the queue did not fit: the batch is as full as it gets.
                while rows < self._max_rows and len(batch) < expected and not self._queue:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except TimeoutError:
                        break
                    rows = take_batch(self._queue, batch, rows, self._max_rows)
            self._last_requests = len(batch)
            await self._run(batch)

    def _predict_and_hook(self, rows: Rows, with_proba: bool) -> tuple[Predictions, Rows | None]:
        predictions, proba = self._predict(rows, with_proba)
        if self._on_batch is not None:
            try:
                self._on_batch(rows, predictions)
            except Exception:
                # Bookkeeping (metrics, drift) must never cost a client its prediction.
                logger.exception("updating metrics after a batch failed")
        return predictions, proba

    async def _run(self, batch: list[Pending]) -> None:
        rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
        with_proba = any(p.with_proba for p in batch)
        try:
            if len(rows) <= self._inline_rows and not self._on_thread:
                predictions, proba = self._predict_and_hook(rows, with_proba)
            else:
                predictions, proba = await self._thread(self._predict_and_hook, rows, with_proba)
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            # One request's rows may be what the model chokes on: retry each alone so only
            # that request fails.
            for pending in batch:
                await self._run([pending])
            return
        start = 0
        for pending in batch:
            end = start + pending.size
            if not pending.future.done():
                pending.future.set_result(
                    (predictions[start:end], None if proba is None else proba[start:end])
                )
            start = end
