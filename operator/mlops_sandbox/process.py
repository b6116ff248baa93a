"""The operator as a real process against the sandbox, for tests, the demo and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class OperatorProcess:
    """``mlops-operator run`` (or ``command``, another operator taking ``--namespace``) in its
    own process group, its output kept in a log file."""

    def __init__(
        self,
        sandbox_env: Mapping[str, str],
        log: Path,
        *,
        namespace: str | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.log_path = log
        self._log = log.open("ab")
        if command is None:
            command = [sys.executable, "-m", "mlops_operator", "run", "--standalone"]
        command = list(command)
        if namespace:
            command += ["--namespace", namespace]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **sandbox_env, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end on its own; its exit code."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, as Kubernetes would, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def output(self) -> str:
        """Everything the operator logged so far."""
        return self.log_path.read_text(errors="replace")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something truthy; raise ``TimeoutError`` naming
    ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
