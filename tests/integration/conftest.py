"""Integration fixtures: the operator as a real process against the sandbox, and a standalone
sandbox S3 server for the storage and trainer tests."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from mlops_operator.sandbox.cluster import Sandbox
from mlops_operator.sandbox.process import OperatorProcess
from mlops_operator.sandbox.s3 import S3Server

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
    # An operator that "works" while printing tracebacks or warnings has a bug.
    for proc in started:
        output = proc.output()
        for marker in ("Traceback", "Warning:"):
            assert marker not in output, f"{proc.log_path} has a {marker}:\n{output}"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on a free loopback port, for this module's tests."""
    with S3Server(buckets=()) as server:
        yield server.endpoint


@pytest.fixture
def s3_env(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Point boto3 at the moto server through the standard AWS variables only."""
    isolated = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Never pick up a developer's ~/.aws profile.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(isolated / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(isolated / "credentials"))
    return s3_endpoint


@pytest.fixture
def bucket(s3_env: str) -> str:
    """A fresh bucket: moto's state is process-wide, so every test gets its own name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    client.close()
    return name


@pytest.fixture
def dead_endpoint() -> str:
    """An endpoint URL on a loopback port nobody listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
