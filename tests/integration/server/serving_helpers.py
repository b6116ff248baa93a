"""Helpers of the model-server tests: models fitted by the real trainer into ``file://``
artifact directories, ``mlops-operator serve`` as a process, reading /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from mlops_operator.runtime.server.app import build_app
from mlops_operator.runtime.server.config import ServeConfig
from mlops_operator.runtime.trainer import parse_trainingjob, train

CLI = str(Path(sys.executable).parent / "mlops-operator")


@dataclass(frozen=True)
class Artifact:
    """A trained model's artifact directory."""

    uri: str
    path: Path
    manifest: dict[str, Any]


def train_model(
    directory: Path, name: str, frame: Any, estimator: dict[str, Any], **spec: Any
) -> Artifact:
    """Train ``frame`` (its label in ``target``) with the real trainer; ``spec`` adds to the
    TrainingJob's spec (e.g. ``preprocessing``)."""
    frame.to_csv(directory / f"{name}.csv", index=False)
    doc = {
        "kind": "TrainingJob",
        "metadata": {"name": f"{name}-1"},
        "spec": {
            "model": name,
            "dataset": {"uri": f"file://{directory}/{name}.csv", "target": "target"},
            "estimator": estimator,
            **spec,
        },
    }
    out = directory / name
    train(parse_trainingjob(json.dumps(doc), "test"), f"file://{out}/")
    return Artifact(f"file://{out}/", out, json.loads((out / "manifest.json").read_text()))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running ``mlops-operator serve``."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    grpc_target: str
    """``host:port`` of the gRPC endpoint."""

    def output(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text()

    def wait(self, path: str, timeout: float = 30.0) -> None:
        """Wait until ``GET path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{path} never answered 200:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


ServerFactory = Callable[..., ServerProcess]


def start_server_process(
    directory: Path, name: str, model_uri: str, *args: str, ready: bool
) -> ServerProcess:
    port, grpc_port = free_port(), free_port()
    log = directory / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    # Tests stop servers at once; the drain tests ask for one with --drain-seconds.
    env["MLOPS_SERVE_DRAIN_SECONDS"] = "0"
    command = [CLI, "serve", "--name", name, "--model-uri", model_uri, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--grpc-port", str(grpc_port)]
    command += ["--cache-dir", str(directory / "cache"), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log, f"127.0.0.1:{grpc_port}")
    try:
        server.wait("/v2/health/ready" if ready else "/v2/health/live")
    except BaseException:
        server.stop()
        raise
    return server


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` with ``labels`` in a text exposition."""
    for line in text.splitlines():
        if line.startswith("#") or line.split("{")[0].split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@asynccontextmanager
async def in_process_app(
    artifact: Artifact, directory: Path, name: str, model_version: str | None = None
) -> AsyncIterator[Starlette]:
    """The server's ASGI app in this process (for httpx's ASGI transport), its model
    loaded, without batching delay."""
    config = ServeConfig(
        name=name,
        model_uri=artifact.uri,
        model_version=model_version,
        digest=None,
        workers=1,
        max_batch_size=32,
        max_batch_delay=0.0,
        cache_dir=str(directory),
        run_dir=str(directory),
        socket_dir=str(directory),
        max_body_bytes=1 << 20,
        load_retry_seconds=30.0,
    )
    application = build_app(config)
    async with application.router.lifespan_context(application):
        for _ in range(400):
            if application.state.server.model is not None:
                break
            await asyncio.sleep(0.025)
        yield application
