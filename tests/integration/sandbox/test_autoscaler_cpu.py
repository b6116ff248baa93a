"""The sandbox HPA controller's CPU measurement: the CPU time of the processes working in a
pod's directory, read with psutil from real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_sandbox.autoscaler import cpu_seconds
from mlops_sandbox.process import wait_for


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Path]:
    """A process spinning on the CPU in a pod's home directory; the directory."""
    home = tmp_path / "home"
    home.mkdir()
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], cwd=home)
    yield home
    process.kill()
    process.wait()


def test_the_cpu_of_a_pods_processes_is_counted(busy: Path, tmp_path: Path) -> None:
    used = wait_for("CPU time to accrue", lambda: (cpu_seconds(busy) or 0) >= 0.2, timeout=30)
    assert used
    idle = tmp_path / "idle"
    idle.mkdir()
    assert cpu_seconds(idle) is None  # no process there: no value, not zero
