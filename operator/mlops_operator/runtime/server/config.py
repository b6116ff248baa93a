"""The server's configuration, handed from ``serve`` to its worker processes. Light: no
third-party imports, since :mod:`.cli` imports it when the command line is parsed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

CONFIG_ENV: Final = "MLOPS_SERVE_CONFIG"
"""Environment variable carrying the configuration (JSON) to the worker processes, which
uvicorn starts fresh with the parent's environment."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything a worker needs to serve the model."""

    name: str
    model_uri: str
    model_version: str | None
    digest: str | None
    workers: int
    max_batch_size: int
    max_batch_delay: float
    """Seconds."""
    cache_dir: str
    run_dir: str
    """This run's private directory: metrics files, readiness markers of the workers."""
    socket_dir: str
    """Where each worker listens for feedback claims of the others (see :mod:`.peers`)."""
    max_body_bytes: int
    load_retry_seconds: float
    host: str = "0.0.0.0"
    """The address both endpoints listen on."""
    grpc_port: int | None = None
    """The Open Inference Protocol's gRPC endpoint's port; ``None``: no gRPC endpoint."""
    drain_seconds: float = 0.0
    """After SIGTERM: seconds of answering readiness with 503 while still serving, before
    the server stops taking connections and shuts down."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a request's headers (slow clients are cut)."""
    body_timeout: float = 30.0
    """Seconds a request may take to send its body; then 408."""

    @property
    def version_label(self) -> str:
        """The ``version`` label of the metrics."""
        return self.model_version or "unknown"

    def to_env(self) -> str:
        """The configuration as the value of :data:`CONFIG_ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The configuration set by ``serve`` in :data:`CONFIG_ENV`."""
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the server with `serve`")
        return cls(**json.loads(raw))

    @property
    def cache_path(self) -> Path:
        """The cache directory as a path."""
        return Path(self.cache_dir)
