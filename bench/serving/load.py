"""The load: closed loop with wrk (a fixed number of connections, each sending its next
request when the last one is answered) and open loop at a fixed rate (requests leave on a
schedule whatever the server does, and latency counts from the scheduled time, so a server
that falls behind is charged for the queue it builds)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import subprocess
import time
from collections.abc import Sequence

import aiohttp

from bench.common import percentile

HERE = pathlib.Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "report.lua"
MARKER = "BENCH_RESULT "


@dataclasses.dataclass(frozen=True)
class Run:
    """One measurement: how many requests were answered in how long, and how fast."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_wrk(output: str) -> Run:
    """The :class:`Run` in wrk's output with ``report.lua``; errors are non-2xx answers,
    timeouts and socket errors."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line.removeprefix(MARKER))
            break
    else:
        raise ValueError(f"wrk printed no result line; it said:\n{output[-2000:]}")
    errors = sum(
        raw[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return Run(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def closed_loop(url: str, body: pathlib.Path, connections: int, seconds: int) -> Run:
    """wrk with one thread (the load generator shares the machine's 2 cores with the server:
    one thread keeps its share small) and ``connections`` connections."""
    result = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--script",
            str(WRK_SCRIPT),
            url,
        ],
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return parse_wrk(result.stdout)


def summarize_open_loop(latencies: Sequence[float], scheduled: int, seconds: float) -> Run:
    """A :class:`Run` from the latencies (seconds, from each request's scheduled time) of the
    requests answered with a 2xx; every other scheduled request is an error."""
    ms = [x * 1000 for x in latencies]
    return Run(
        requests=len(ms),
        seconds=seconds,
        errors=scheduled - len(ms),
        p50_ms=percentile(ms, 50) or 0.0,
        p99_ms=percentile(ms, 99) or 0.0,
        max_ms=max(ms, default=0.0),
    )


async def _open_loop(url: str, body: bytes, rate: float, seconds: float, timeout: float) -> Run:
    count = int(rate * seconds)
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def one(i: int) -> None:
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = 200 <= response.status < 300
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(loop.time() - scheduled)

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.monotonic() - began
    return summarize_open_loop(latencies, count, max(seconds, elapsed))


def open_loop(url: str, body: bytes, rate: float, seconds: float, timeout: float = 10.0) -> Run:
    """Send ``rate`` requests per second for ``seconds`` on a fixed schedule (aiohttp, as
    many connections as needed)."""
    return asyncio.run(_open_loop(url, body, rate, seconds, timeout))
