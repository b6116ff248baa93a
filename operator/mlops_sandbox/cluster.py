"""The sandbox: a Kubernetes API emulator, S3 and the workload runner, started together.

``mlops-sandbox up`` runs one for a person; the test suite runs one per session.
Everything is reached over HTTP on loopback, exactly like a real cluster and a real
object store, so the operator under test is configured the same way as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import logging
import os
import pathlib
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import mlops_operator
from mlops_sandbox._lifecycle import Managed

# The heavy parts (moto, kmock, aiohttp) are imported in start(): the CLI imports this module
# to build its parser, and every pod the runner starts runs that CLI.
if TYPE_CHECKING:
    import aiohttp

    from mlops_sandbox.apiserver import Fault, SandboxAPI, Write
    from mlops_sandbox.faults import Record, S3Fault
    from mlops_sandbox.prometheus import PrometheusServer
    from mlops_sandbox.s3 import S3Server

T = TypeVar("T")

CREDENTIALS_SECRET = "mlops-s3-credentials"
"""The Secret with the S3 keys, in ``default`` and every namespace made by ensure_namespace."""

BUCKET = "mlops-artifacts"
"""The artifact bucket created on start (the operator's default ``MLOPS_S3_BUCKET``)."""

DEFAULT_NAMESPACE = "default"

_CALL_TIMEOUT = 60.0


def default_crd_dir() -> pathlib.Path | None:
    """The repository's ``crds/`` folder, when running from a source checkout."""
    path = pathlib.Path(mlops_operator.__file__).resolve().parents[2] / "crds"
    return path if path.is_dir() else None


def tools_bin_dir() -> pathlib.Path | None:
    """The checkout's ``.tools/bin`` (kubectl, helm: ``make tools``), when it exists."""
    path = pathlib.Path(mlops_operator.__file__).resolve().parents[2] / ".tools" / "bin"
    return path if (path / "kubectl").is_file() else None


class Sandbox(Managed):
    """API emulator + S3 + workload runner, running in a background thread with its own event
    loop, so synchronous and asynchronous callers (tests, the CLI, a demo) can all use it over
    HTTP. With ``prometheus=True``, also a Prometheus server scraping the pods annotated
    ``prometheus.io/scrape: "true"`` (see :mod:`mlops_sandbox.prometheus`). moto accepts any
    keys: ``secret_access_key`` chooses the one the Secrets hold."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        *,
        api_port: int = 0,
        s3_port: int = 0,
        crd_dir: pathlib.Path | None = None,
        run_workloads: bool = True,
        prometheus: bool = False,
        secret_access_key: str | None = None,
        event_ttl: float | None = 3600.0,
        request_log_size: int = 100_000,
        max_grace_seconds: float = 3.0,
    ) -> None:
        self.secret_access_key = secret_access_key
        """The S3 secret key in the credentials Secrets and in :meth:`env` (default: the
        sandbox's fixed throwaway key). Tests set a unique canary and check it never leaks."""
        self.state_dir = state_dir.resolve()
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.env_file = self.state_dir / "sandbox.env"
        self.services_file = self.state_dir / "services.txt"
        """``namespace/name http://127.0.0.1:PORT`` per Service, while the runner forwards."""
        self._api_port = api_port
        self._s3_port = s3_port
        self._crd_dir = crd_dir if crd_dir is not None else default_crd_dir()
        self._run_workloads = run_workloads
        self._event_ttl = event_ttl
        """Seconds an Event lives after its last write (the API server's ``--event-ttl``)."""
        self._request_log_size = request_log_size
        self._max_grace_seconds = max_grace_seconds
        """The runner's cap on a pod's ``terminationGracePeriodSeconds`` (short for tests; a
        soak raises it so servers finish their drain, as on a cluster)."""
        self._with_prometheus = prometheus
        self._prometheus: PrometheusServer | None = None
        self._api: SandboxAPI | None = None
        self._api_url: str | None = None
        self._s3: S3Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def api(self) -> SandboxAPI:
        """The emulator object, for in-process inspection in tests only (not thread-safe)."""
        if self._api is None:
            raise RuntimeError("The sandbox is not started.")
        return self._api

    @property
    def api_url(self) -> str:
        """The Kubernetes API's URL, e.g. ``http://127.0.0.1:41234``."""
        if self._api_url is None:
            raise RuntimeError("The sandbox is not started.")
        return self._api_url

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint's URL."""
        if self._s3 is None:
            raise RuntimeError("The sandbox is not started.")
        return self._s3.endpoint

    @property
    def prometheus_url(self) -> str:
        """The sandbox Prometheus' URL; only when started with ``prometheus=True``."""
        if self._prometheus is None:
            raise RuntimeError("The sandbox runs no Prometheus (start it with prometheus=True).")
        return self._prometheus.url

    def env(self) -> dict[str, str]:
        """What an operator process, boto3 or a person's shell needs to use the sandbox."""
        from mlops_sandbox.s3 import SECRET_ACCESS_KEY, credentials_env

        env = {
            "KUBECONFIG": str(self.kubeconfig),
            **credentials_env(self.s3_endpoint, self.secret_access_key or SECRET_ACCESS_KEY),
            "MLOPS_S3_ENDPOINT": self.s3_endpoint,
            "MLOPS_S3_BUCKET": BUCKET,
        }
        if self._prometheus is not None:
            env["MLOPS_PROMETHEUS_URL"] = self.prometheus_url
        return env

    def start(self) -> None:
        """Start S3, the API, the runner and (if asked for) Prometheus; write the kubeconfig
        and the env file."""
        if self._loop is not None:
            raise RuntimeError("The sandbox is already started.")
        from mlops_sandbox.prometheus import PrometheusServer, find_binary
        from mlops_sandbox.s3 import S3Server

        # Before anything starts: a missing binary is the likeliest failure, and the clearest.
        binary = find_binary() if self._with_prometheus else None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._s3 = S3Server(port=self._s3_port, buckets=(BUCKET,))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox", daemon=True)
        self._thread.start()
        try:
            if binary is not None:
                self._prometheus = PrometheusServer(self.state_dir / "prometheus", binary=binary)
                self._prometheus.start()
            self._s3.start()
            self._call(self._astart())
            self._write_files()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the runner (terminating its processes), the API and S3. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            try:
                self._call(self._astop())
                self._call(loop.shutdown_asyncgens())
                self._call(loop.shutdown_default_executor())
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()
                loop.close()
        self._loop = None
        self._thread = None
        self._api = None
        self._api_url = None
        if self._s3 is not None:
            self._s3.stop()
            self._s3 = None
        if self._prometheus is not None:
            self._prometheus.stop()
            self._prometheus = None

    def storage_down(self) -> None:
        """Stop S3 (connections are refused) until :meth:`storage_up`: a storage outage."""
        if self._s3 is None:
            raise RuntimeError("The sandbox is not started.")
        self._s3.outage()

    def storage_up(self) -> None:
        """Serve S3 again on the same endpoint, with everything it stored before."""
        if self._s3 is None:
            raise RuntimeError("The sandbox is not started.")
        self._s3.resume()

    def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` (if absent) with the S3 credentials Secret in it."""
        self._call(self._ensure_namespace(name))

    def service_address(self, namespace: str, name: str) -> str | None:
        """Where the runner forwards a Service (``http://127.0.0.1:PORT``, its first port),
        or ``None`` if the Service does not exist or is not forwarded (yet)."""
        return self._call(self._service_address(namespace, name))

    async def _service_address(self, namespace: str, name: str) -> str | None:
        from mlops_sandbox.services import ADDRESS_ANNOTATION

        assert self._session is not None
        path = f"/api/v1/namespaces/{namespace}/services/{name}"
        async with self._session.get(self.api_url + path) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            service = await response.json()
        address: str | None = ((service.get("metadata") or {}).get("annotations") or {}).get(
            ADDRESS_ANNOTATION
        )
        return address

    def inject(self, fault: Fault) -> Fault:
        """Make the API answer matching requests with an error (thread-safe: the API runs on
        the sandbox's own loop); the fault counts its hits."""

        async def add() -> None:
            self.api.faults.append(fault)

        self._call(add())
        return fault

    def add_write_hook(self, hook: Callable[[Write], None]) -> None:
        """Call ``hook`` on the API's loop after each write it serves (see
        :attr:`SandboxAPI.write_hooks`); ``hook`` must be quick and thread-safe."""

        async def add() -> None:
            self.api.write_hooks.append(hook)

        self._call(add())

    def remove_write_hook(self, hook: Callable[[Write], None]) -> None:
        """Stop calling ``hook``."""

        async def remove() -> None:
            self.api.write_hooks.remove(hook)

        self._call(remove())

    def clear_faults(self) -> None:
        """Serve every request again (the S3 server's too)."""

        async def clear() -> None:
            self.api.faults.clear()

        self._call(clear())
        if self._s3 is not None:
            self._s3.faults.clear()

    def inject_s3(self, fault: S3Fault) -> S3Fault:
        """Make the S3 server slow down, answer late or refuse connections (see
        :class:`~mlops_sandbox.faults.S3Fault`); the fault counts its hits."""
        if self._s3 is None:
            raise RuntimeError("The sandbox is not started.")
        result: S3Fault = self._s3.faults.add(fault)
        return result

    def retention(self) -> dict[str, int]:
        """What the emulator holds now, by store (see
        :meth:`~mlops_sandbox.apiserver.SandboxAPI.retention`)."""

        async def read() -> dict[str, int]:
            return self.api.retention()

        return self._call(read())

    def object_counts(self) -> dict[str, int]:
        """How many objects of each resource (by plural) exist now."""

        async def read() -> dict[str, int]:
            counts: dict[str, int] = {}
            for key, _ in self.api.live_objects():
                plural = str(key[0].plural)
                counts[plural] = counts.get(plural, 0) + 1
            return counts

        return self._call(read())

    def requests(self, **filters: Any) -> list[Record]:
        """The API requests received so far, oldest first, filtered like
        :meth:`~mlops_sandbox.faults.RequestLog.records` (``client``, ``verb``…)."""
        return self.api.request_log.records(**filters)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("The sandbox is not started.")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(_CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def _astart(self) -> None:
        import aiohttp

        from mlops_sandbox.apiserver import serve_api
        from mlops_sandbox.autoscaler import Autoscaler
        from mlops_sandbox.runner import Runner

        self._stack = contextlib.AsyncExitStack()
        api, url = await self._stack.enter_async_context(
            serve_api(
                port=self._api_port,
                crd_dir=self._crd_dir,
                event_ttl=self._event_ttl,
                request_log_size=self._request_log_size,
            )
        )
        self._api, self._api_url = api, url
        if self._s3 is not None:
            api.s3_faults = self._s3.faults
        self._session = aiohttp.ClientSession()
        self._stack.push_async_callback(self._session.close)
        await self._ensure_namespace(DEFAULT_NAMESPACE)
        if self._run_workloads:
            runner = Runner(
                url,
                self.state_dir / "runner",
                services_file=self.services_file,
                max_grace_seconds=self._max_grace_seconds,
            )
            await self._stack.enter_async_context(runner)
            api.log_provider = runner.read_log
            # Closed before the runner (the stack unwinds in reverse): it scales its pods.
            await self._stack.enter_async_context(Autoscaler(runner))
        if self._prometheus is not None:
            await self._watch_scrape_targets(url, self._prometheus)

    async def _watch_scrape_targets(self, api_url: str, prometheus: PrometheusServer) -> None:
        """Keep Prometheus' targets file in step with the pods, from a watch of them."""
        from mlops_sandbox.runner import Informer, KubeClient

        assert self._stack is not None and self._session is not None

        def on_event(kind: str, pod: dict[str, Any]) -> None:
            prometheus.update_targets(pods.cache.values())

        pods = Informer(KubeClient(self._session, api_url), "/api/v1/pods", on_event)
        task = asyncio.create_task(pods.run(), name="sandbox-prometheus-targets")

        async def cancel() -> None:
            task.cancel()
            await asyncio.wait({task})

        self._stack.push_async_callback(cancel)
        await pods.synced.wait()

    async def _astop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._session = None

    async def _ensure_namespace(self, name: str) -> None:
        from mlops_sandbox.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY

        def encode(value: str) -> str:
            return base64.b64encode(value.encode()).decode()

        await self._create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        await self._create(
            f"/api/v1/namespaces/{name}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": CREDENTIALS_SECRET, "namespace": name},
                "type": "Opaque",
                "data": {
                    "AWS_ACCESS_KEY_ID": encode(ACCESS_KEY_ID),
                    "AWS_SECRET_ACCESS_KEY": encode(self.secret_access_key or SECRET_ACCESS_KEY),
                },
            },
        )

    async def _create(self, path: str, body: dict[str, Any]) -> None:
        """POST ``body``; an existing object of that name is fine (the content is fixed)."""
        assert self._session is not None
        async with self._session.post(self.api_url + path, json=body) as response:
            if response.status >= 400 and response.status != 409:
                text = await response.text()
                raise RuntimeError(f"POST {path}: HTTP {response.status}: {text[:300]}")

    def _write_files(self) -> None:
        from mlops_sandbox.kubeconfig import write_kubeconfig

        write_kubeconfig(self.kubeconfig, self.api_url, namespace=DEFAULT_NAMESPACE)
        lines = [f"export {key}={shlex.quote(value)}" for key, value in self.env().items()]
        tools = tools_bin_dir()
        if tools is not None:
            # kubectl and helm as `make tools` fetched them, first on PATH.
            lines.append(f'export PATH={shlex.quote(str(tools))}:"$PATH"')
        # Owner-only: the file holds S3 keys (throwaway ones, but keys all the same).
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Generated by `mlops-sandbox up`; valid while it runs.\n")
            f.write("\n".join(lines) + "\n")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``mlops-sandbox up`` options to ``parser``."""
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(".sandbox"),
        help="kubeconfig, env file, pod logs and pod working directories (default: .sandbox)",
    )
    parser.add_argument(
        "--api-port", type=int, default=0, help="Kubernetes API port (default: any free port)"
    )
    parser.add_argument("--s3-port", type=int, default=0, help="S3 port (default: any free port)")
    parser.add_argument(
        "--crd-dir",
        type=pathlib.Path,
        default=None,
        help="CRD YAML to serve (default: the repository's crds/ folder)",
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus (the Debian package `prometheus`), scraping annotated pods",
    )


def _banner(sandbox: Sandbox) -> str:
    env_file = os.path.relpath(sandbox.env_file)
    prometheus_url = sandbox.env().get("MLOPS_PROMETHEUS_URL")
    prometheus = f"\n  Prometheus       {prometheus_url}" if prometheus_url else ""
    return f"""\
The mlops sandbox is running.

  Kubernetes API   {sandbox.api_url}
  S3 endpoint      {sandbox.s3_endpoint}  (bucket {BUCKET}){prometheus}
  kubeconfig       {sandbox.kubeconfig}
  state and logs   {sandbox.state_dir}

Point a shell at it (kubeconfig, S3 endpoint and keys):
  source {env_file}

Then run the operator against it:
  mlops-operator run

and use kubectl (sandbox.env puts .tools/bin first on PATH; `make tools` fetches it):
  python examples/upload-datasets.py      # the datasets the examples train on
  kubectl apply -f examples/trainingjob-classification.yaml
  kubectl get mlops

Jobs and Deployments run as local processes, each Deployment pod on its own 127.0.x.y
address, scaled by HorizontalPodAutoscalers on the pods' own metrics; pod logs are under
{sandbox.state_dir / "runner" / "pods"}.
Services are forwarded from 127.0.0.1 ports, listed in {sandbox.services_file}
(and in each Service's annotation sandbox.mlops.dev/address).
Press Ctrl+C to stop.
"""


def sandbox_command(args: argparse.Namespace) -> int:
    """``mlops-sandbox up``: run a sandbox until SIGINT or SIGTERM."""
    from mlops_sandbox.prometheus import PrometheusNotInstalled

    # Pod starts and exits are worth seeing; every request the API serves is not.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mlops_sandbox").setLevel(logging.INFO)
    logging.getLogger("mlops_sandbox.apiserver").setLevel(logging.WARNING)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(
        args.state_dir,
        api_port=args.api_port,
        s3_port=args.s3_port,
        crd_dir=args.crd_dir,
        prometheus=args.prometheus,
    )
    try:
        try:
            sandbox.start()
        # Most likely a port in use, or no prometheus binary: say so, without a traceback.
        except (OSError, PrometheusNotInstalled) as e:
            print(f"mlops-sandbox up: cannot start: {e}", file=sys.stderr)
            return 1
        try:
            print(_banner(sandbox), flush=True)
            while not stop.wait(0.5):  # a timed wait keeps the main thread responsive
                pass
            print("Stopping the sandbox…", flush=True)
        finally:
            sandbox.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Stopped.", flush=True)
    return 0
