"""An S3-compatible endpoint on loopback: moto in server mode, reached over real HTTP.

boto3 talks to it exactly as it would to MinIO: through ``AWS_ENDPOINT_URL`` and a pair of
keys. moto accepts any keys, so the sandbox uses fixed throwaway ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from mlops_sandbox._lifecycle import Managed
from mlops_sandbox.faults import Faults, S3Fault, S3FaultMiddleware

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

DEFAULT_BUCKET = "mlops-artifacts"
"""The bucket the operator's settings default to (``MLOPS_S3_BUCKET``)."""

REGION = "us-east-1"
"""The region boto3 is told to use; us-east-1 needs no bucket location constraint."""

ACCESS_KEY_ID = "sandbox-access-key"
"""Throwaway key id: moto accepts any, and nothing outside the sandbox ever sees it."""

SECRET_ACCESS_KEY = "sandbox-secret-key"  # not a secret: moto accepts any key
"""Throwaway secret key, paired with :data:`ACCESS_KEY_ID`."""


class _QuietRequestHandler(MotoRequestHandler):
    """moto's handler without werkzeug's one-line-per-request access log on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Drop access-log lines: a training run makes hundreds of requests."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Send werkzeug's own messages (errors) to this module's logger, not to stderr."""
        level = logging.WARNING if type == "error" else logging.DEBUG
        logger.log(level, message.rstrip(), *args)


def credentials_env(endpoint: str, secret_access_key: str = SECRET_ACCESS_KEY) -> dict[str, str]:
    """The standard AWS variables that point boto3 (and the AWS CLI) at ``endpoint``."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }


class S3Server(Managed):
    """moto's S3 (and the other moto services) on ``host:port``, in a daemon thread.

    moto keeps its state in process-wide backends: buckets made here are also seen by
    ``moto.mock_aws`` in the same process, and are lost when the process exits.
    moto's S3 makes no outbound calls, and the server listens on loopback only.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        buckets: tuple[str, ...] = (DEFAULT_BUCKET,),
    ) -> None:
        self._host = host
        self._port = port
        self._buckets = buckets
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.faults = Faults(on_add=self._on_fault)
        """Slowdowns, latency and refused connections (see :class:`S3Fault`)."""
        self._outage: threading.Timer | None = None
        self._refused_port = 0

    @property
    def endpoint(self) -> str:
        """The URL boto3 is given as ``endpoint_url``; only valid once started (and during
        a ``refuse`` fault: where it answers again)."""
        if self._server is None and self._refused_port:  # an outage: where it answers again
            return f"http://{self._host}:{self._refused_port}"
        if self._server is None:
            raise RuntimeError("The S3 server is not started.")
        return f"http://{self._host}:{self._server.server_port}"

    def env(self) -> dict[str, str]:
        """The AWS variables that point a process at this server."""
        return credentials_env(self.endpoint)

    def start(self) -> None:
        """Bind the port, serve in a background thread, and create the default buckets."""
        if self._server is not None:
            raise RuntimeError("The S3 server is already started.")
        self._serve(self._port)
        self._create_buckets()

    def _serve(self, port: int) -> None:
        app = S3FaultMiddleware(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server = make_server(
            self._host, port, app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox-s3", daemon=True
        )
        self._thread.start()

    def _on_fault(self, rule: S3Fault) -> None:
        """A ``refuse`` rule is an :meth:`outage` now and a :meth:`resume` after its window."""
        if rule.action != "refuse" or self._server is None:
            return
        assert rule.seconds is not None
        self.outage()
        self._outage = threading.Timer(rule.seconds, self.resume)
        self._outage.daemon = True
        self._outage.start()

    def outage(self) -> None:
        """Close the port until :meth:`resume` (refused connections): a storage outage."""
        if self._server is None:
            return
        self._refused_port = self._server.server_port
        self._halt()

    def resume(self) -> None:
        """Serve again on the same port, with everything stored before the outage (a
        ``refuse`` window still running ends now)."""
        if self._outage is not None:
            self._outage.cancel()
            self._outage = None
        if self._server is None and self._refused_port:
            self._serve(self._refused_port)

    def stop(self) -> None:
        """Stop serving and release the port; buckets stay in moto's in-process backend."""
        if self._outage is not None:
            self._outage.cancel()
            self._outage = None
        self._halt()

    def _halt(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def _create_buckets(self) -> None:
        client = client_from_env(self.env())
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            for bucket in self._buckets:
                if bucket not in existing:
                    client.create_bucket(Bucket=bucket)
        finally:
            client.close()


def client_from_env(env: Mapping[str, str], config: Config | None = None) -> S3Client:
    """A boto3 S3 client from the ``AWS_*`` variables of :func:`credentials_env` (``config``:
    botocore's retries and timeouts, else its defaults)."""
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=config,
    )
