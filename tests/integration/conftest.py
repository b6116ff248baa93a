"""Integration fixtures: the operator as a real process against the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlops_operator.sandbox.cluster import Sandbox
from mlops_operator.sandbox.process import OperatorProcess

OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(sandbox: Sandbox, namespace: str, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start operator processes watching the test's namespace; all stop at teardown.
    Keyword arguments become extra environment variables (e.g. MLOPS_FAILPOINTS)."""
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        proc = OperatorProcess(
            sandbox.env(),
            tmp_path / f"operator-{len(started)}.log",
            namespace=namespace,
            env={"MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:sandbox", **env},
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
