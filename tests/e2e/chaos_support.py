"""Chaos for the e2e tests: kill the operator (-9) right after its Nth API write or at a
random moment, start a new one at once, and log every write with the process that made it."""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_sandbox.apiserver import Write
from mlops_sandbox.process import OperatorProcess

_PID = re.compile(r"^mlops-operator/\S+ \(pid (\d+)\)")


def writer_pid(write: Write) -> int | None:
    """The operator process that made a write (its User-Agent names it), else None."""
    match = _PID.match(write.agent)
    return int(match.group(1)) if match else None


@dataclass
class Kill:
    """One kill: after the ``after_writes``-th write of a process, or ``after_seconds``."""

    after_writes: int | None = None
    after_seconds: float | None = None
    done_at: str = ""
    """The write it followed (``verb resource/name``), or ``time``."""


def plan_kills(seed: int, count: int) -> list[Kill]:
    """``count`` kills drawn from ``seed``: half right after a write (the 1st to the 40th of
    the process), half at a random moment in its first 8 s."""
    rng = random.Random(seed)
    kills = []
    for _ in range(count):
        if rng.random() < 0.5:
            kills.append(Kill(after_writes=rng.randint(1, 40)))
        else:
            kills.append(Kill(after_seconds=round(rng.uniform(0.5, 8.0), 2)))
    return kills


@dataclass
class Chaos:
    """Runs an operator and kills it as planned, starting a new one after each kill."""

    start: Callable[[], OperatorProcess]
    kills: list[Kill]
    writes: list[Write] = field(default_factory=list)
    done: list[Kill] = field(default_factory=list)
    operator: OperatorProcess | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    _since: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def on_write(self, write: Write) -> None:
        """The emulator's hook: log the write; kill its writer if this was the planned one."""
        self.writes.append(write)
        with self._lock:
            operator = self.operator
            if operator is None or writer_pid(write) != operator.process.pid:
                return
            self._count += 1
            kill = self.kills[0] if self.kills else None
            if kill is not None and kill.after_writes == self._count:
                self._kill(operator, f"{write.verb} {write.resource}/{write.name}")

    def _kill(self, operator: OperatorProcess, at: str) -> None:
        kill = self.kills.pop(0)
        kill.done_at = at
        self.done.append(kill)
        os.killpg(operator.process.pid, signal.SIGKILL)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                operator = self.operator
                assert operator is not None
                kill = self.kills[0] if self.kills else None
                if (
                    kill is not None
                    and kill.after_seconds is not None
                    and time.monotonic() - self._since >= kill.after_seconds
                    and operator.process.poll() is None
                ):
                    self._kill(operator, "time")
                if operator.process.poll() is not None:
                    operator.process.wait()
                    self._begin()
            self._stop.wait(0.05)

    def _begin(self) -> None:
        self.operator = self.start()
        self._count = 0
        self._since = time.monotonic()

    def __enter__(self) -> Chaos:
        with self._lock:
            self._begin()
        self._thread = threading.Thread(target=self._supervise, name="chaos", daemon=True)
        self._thread.start()
        return self

    def calm(self) -> OperatorProcess:
        """Stop killing; the operator that runs from now on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.kills.clear()
            assert self.operator is not None
            if self.operator.process.poll() is not None:
                self._begin()
            return self.operator

    def __exit__(self, *exc: Any) -> None:
        self.calm()
