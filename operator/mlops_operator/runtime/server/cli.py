"""``mlops-operator serve``: the command line of the model server.

Importing this module is cheap (no scikit-learn, Starlette or uvicorn): the top-level
command line imports it to build its parser.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Final

from mlops_operator.runtime.server.config import CONFIG_ENV, ServeConfig

logger = logging.getLogger(__name__)

HOST_ENV: Final = "MLOPS_SERVE_HOST"
GRPC_PORT_ENV: Final = "MLOPS_SERVE_GRPC_PORT"
DEFAULT_GRPC_PORT: Final = 8081
DRAIN_ENV: Final = "MLOPS_SERVE_DRAIN_SECONDS"
DEFAULT_DRAIN_SECONDS: Final = 5.0
"""Long enough for a Service's endpoints to drop a terminating pod on most clusters."""
CACHE_ENV: Final = "MLOPS_CACHE_DIR"
DEFAULT_CACHE_DIR: Final = "/tmp/mlops-cache"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
APP: Final = "mlops_operator.runtime.server.app:create_app"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# sun_path is 108 bytes on Linux, 104 on macOS; leave room for "<worker>.sock".
_MAX_SOCKET_DIR: Final = 80


def _digest(value: str) -> str:
    if not _DIGEST.match(value):
        raise argparse.ArgumentTypeError("expected sha256:<64 lower-case hex digits>")
    return value


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be a port number (0 to turn gRPC off)")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``."""
    parser.add_argument("--name", required=True, help="model name in URLs and metrics")
    parser.add_argument(
        "--model-uri",
        required=True,
        help="artifact directory (s3://bucket/prefix/ or file:///path/) holding model.joblib "
        "and, optionally, manifest.json and reference.json; S3 endpoint and credentials from "
        "the AWS_* variables",
    )
    parser.add_argument("--model-version", help="version number, for metadata and metrics")
    parser.add_argument(
        "--digest",
        type=_digest,
        help="expected sha256:<hex> of model.joblib (default: the manifest's; required "
        "without a manifest)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get(HOST_ENV, "0.0.0.0"),
        help=f"address to listen on (default: ${HOST_ENV} or 0.0.0.0)",
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default: 8080)")
    parser.add_argument(
        "--grpc-port",
        type=_port,
        default=os.environ.get(GRPC_PORT_ENV, str(DEFAULT_GRPC_PORT)),
        help="port of the Open Inference Protocol's gRPC endpoint, 0 for none "
        f"(default: ${GRPC_PORT_ENV} or {DEFAULT_GRPC_PORT})",
    )
    parser.add_argument(
        "--workers", type=_positive, default=1, help="worker processes on one socket (default: 1)"
    )
    parser.add_argument(
        "--max-batch-size", type=_positive, default=256, help="rows per predict call (default: 256)"
    )
    parser.add_argument(
        "--max-batch-delay-ms",
        type=_non_negative,
        default=2.0,
        help="longest wait for more requests to fill a batch, under concurrent load only "
        "(default: 2)",
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR),
        help=f"model cache and runtime files (default: ${CACHE_ENV} or {DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=8 * 1024 * 1024,
        help="largest request body accepted (default: 8 MiB)",
    )
    parser.add_argument(
        "--load-retry-seconds",
        type=_non_negative,
        default=30.0,
        help="wait between attempts to load a missing or unverifiable model (default: 30)",
    )

    parser.add_argument(
        "--drain-seconds",
        type=_non_negative,
        default=float(os.environ.get(DRAIN_ENV, DEFAULT_DRAIN_SECONDS)),
        help="after SIGTERM, answer readiness with 503 but keep serving this long before "
        f"shutting down (default: ${DRAIN_ENV} or {DEFAULT_DRAIN_SECONDS:g})",
    )
    parser.add_argument(
        "--header-timeout",
        type=_non_negative,
        default=10.0,
        help="seconds a client may take to send a request's headers, 0 for no limit (default: 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_non_negative,
        default=30.0,
        help="seconds a client may take to send a request's body, then 408 (default: 30)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=1000,
        help="open connections (or requests in progress) per worker beyond which requests "
        "are answered 503 (default: 1000)",
    )
    parser.add_argument(
        "--keep-alive-seconds",
        type=_non_negative,
        default=5.0,
        help="seconds an idle keep-alive connection stays open (default: 5)",
    )


def configure_logging() -> None:
    """Log to stderr, one line per record, INFO and up for this package."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mlops_operator").setLevel(logging.INFO)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)


def _socket_dir(run_dir: Path, workers: int) -> Path:
    if workers == 1:
        return run_dir  # no peers to listen for
    sockets = run_dir / "sockets"
    if len(str(sockets.resolve())) <= _MAX_SOCKET_DIR:
        sockets.mkdir()
        return sockets
    # A deep cache directory would overflow the socket path limit.
    return Path(tempfile.mkdtemp(prefix="mlops-serve-"))


def _check_free(host: str, port: int) -> None:
    """Fail at once, with the reason, when the gRPC port is taken.

    gRPC binds with SO_REUSEPORT so that every worker can listen on the port; the same
    option would let it share the port unnoticed with another server that set it too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(f"cannot listen for gRPC on {host}:{port}: {exc.strerror}") from exc


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve_command(args: argparse.Namespace) -> int:
    """Run the model server until it is stopped; returns the exit code."""
    configure_logging()
    if args.grpc_port:
        _check_free(args.host, args.grpc_port)
    cache_dir = Path(args.cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A fresh directory per run: prometheus-client's multiprocess files of a previous run
    # would otherwise be summed into this one's counters.
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir))
    socket_dir = _socket_dir(run_dir, args.workers)
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    config = ServeConfig(
        name=args.name,
        model_uri=args.model_uri,
        model_version=args.model_version,
        digest=args.digest,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        max_batch_delay=args.max_batch_delay_ms / 1000.0,
        cache_dir=str(cache_dir.resolve()),
        run_dir=str(run_dir),
        socket_dir=str(socket_dir),
        max_body_bytes=args.max_body_bytes,
        load_retry_seconds=args.load_retry_seconds,
        host=args.host,
        grpc_port=args.grpc_port or None,
        drain_seconds=args.drain_seconds,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout or math.inf,
    )
    os.environ[CONFIG_ENV] = config.to_env()

    import uvicorn

    from mlops_operator.runtime.server.connections import HeaderDeadlineProtocol

    logger.info(
        "serving %s from %s on %s: HTTP port %d, gRPC port %s, %d worker(s)",
        args.name,
        args.model_uri,
        args.host,
        args.port,
        config.grpc_port or "off",
        args.workers,
    )
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully; with the
    # default handler that would kill the process before the run directory is removed.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(
            APP,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http=HeaderDeadlineProtocol,
            limit_concurrency=args.max_connections,
            timeout_keep_alive=int(args.keep_alive_seconds),
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            # Requests in progress when the drain ends get this long to finish.
            timeout_graceful_shutdown=10,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if not socket_dir.is_relative_to(run_dir):
            shutil.rmtree(socket_dir, ignore_errors=True)
    return 0
