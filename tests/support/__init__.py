"""What every test folder shares: the one poller, ``eventually``, for tests that watch real
processes converge (the e2e and sandbox tests); the controller tests never poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll an async probe until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)
