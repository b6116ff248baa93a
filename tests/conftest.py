"""Shared fixtures: one sandbox per session, one namespace per test, the operator as a real
process watching it, the project's resources through the kubernetes client, and a standalone
sandbox S3 server for the storage and trainer tests."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import kubernetes
import pytest

from mlops_sandbox.cluster import Sandbox
from mlops_sandbox.process import OperatorProcess, wait_for
from mlops_sandbox.s3 import S3Server, client_from_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OperatorFactory = Callable[..., OperatorProcess]

GROUP, VERSION = "mlops.dev", "v1alpha1"
DATA_BUCKET = "datasets"
CANARY_PREFIX = "mlops-canary-"
"""The session sandbox's S3 secret key starts so: recognisable wherever it would leak."""


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A started sandbox (API, S3, workload runner) shared by the whole session. Its S3
    secret key is a canary unique to the run: tests/e2e checks it never leaks."""
    canary = f"{CANARY_PREFIX}{uuid.uuid4().hex}"
    # With a real Prometheus scraping the pods, for the PromQL metric source.
    with Sandbox(
        tmp_path_factory.mktemp("sandbox"), prometheus=True, secret_access_key=canary
    ) as started:
        yield started


@pytest.fixture
def kube(sandbox: Sandbox) -> Iterator[kubernetes.client.ApiClient]:
    """A ``kubernetes`` client configured from the sandbox's kubeconfig."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        yield client


@pytest.fixture
def namespace(sandbox: Sandbox, kube: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace with the S3 credentials Secret; deleted (with its Jobs) afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    sandbox.ensure_namespace(name)
    yield name
    kubernetes.client.CoreV1Api(kube).delete_namespace(name)


@pytest.fixture
def s3(sandbox: Sandbox) -> Iterator[S3Client]:
    """A boto3 S3 client pointed at the sandbox's endpoint, as the operator's would be."""
    client = client_from_env(sandbox.env())
    yield client
    client.close()


class OperatorStarter:
    """Starts operator processes watching one namespace, each serving its /metrics on a
    loopback port of its own (``metrics_urls``, read by tests/e2e's leak checks)."""

    def __init__(self, sandbox: Sandbox, namespace: str, log_dir: Path) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.log_dir = log_dir
        self.started: list[OperatorProcess] = []
        self.metrics_urls: list[str] = []

    def __call__(self, **env: str) -> OperatorProcess:
        port = env.pop("MLOPS_METRICS_PORT", "")
        if not port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = str(sock.getsockname()[1])
        proc = OperatorProcess(
            self.sandbox.env(),
            self.log_dir / f"operator-{len(self.started)}.log",
            namespace=self.namespace,
            env={
                "MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:sandbox",
                "MLOPS_METRICS_PORT": port,
                **env,
            },
        )
        self.started.append(proc)
        self.metrics_urls.append(f"http://127.0.0.1:{port}/metrics")
        return proc


@pytest.fixture
def start_operator(sandbox: Sandbox, namespace: str, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start operator processes watching the test's namespace; all stop at teardown.
    Keyword arguments become extra environment variables (e.g. MLOPS_FAILPOINTS)."""
    starter = OperatorStarter(sandbox, namespace, tmp_path)
    started = starter.started
    yield starter
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


@pytest.fixture
def cancer_csv(s3: Any, namespace: str) -> str:
    """scikit-learn's breast-cancer dataset as a CSV in the sandbox S3; its URI."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    try:
        s3.create_bucket(Bucket=DATA_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    key = f"{namespace}/breast-cancer.csv"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=buffer.getvalue().encode())
    return f"s3://{DATA_BUCKET}/{key}"


@pytest.fixture
def crd_api(kube: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    """The kubernetes client's API for custom objects, over HTTP to the sandbox."""
    return kubernetes.client.CustomObjectsApi(kube)


class Resources:
    """Create and read the project's resources in one namespace, as a user's client would."""

    def __init__(self, api: kubernetes.client.CustomObjectsApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    @staticmethod
    def condition(status: dict[str, Any], type: str) -> dict[str, Any]:
        """The condition of a type from a status dict (empty when absent)."""
        for cond in status.get("conditions") or []:
            if cond.get("type") == type:
                return dict(cond)
        return {}

    def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        result: dict[str, Any] = self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return result

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def list(self, plural: str) -> list[dict[str, Any]]:
        result = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        items: list[dict[str, Any]] = result["items"]
        return items

    def wait_status(
        self,
        plural: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 90.0,
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            obj = self.get(plural, name)
            status = (obj or {}).get("status") or {}
            seen["status"] = status
            return obj if obj and predicate(status) else None

        try:
            return wait_for(f"{plural}/{name} {what}", probe, timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last status: {seen.get('status')}") from None

    def wait_rolled_out(self, name: str, version: int, timeout: float = 90.0) -> dict[str, Any]:
        """The InferenceService ``name`` once it serves ``version``, rolled out."""
        return self.wait_status(
            "inferenceservices",
            name,
            lambda s: (
                s.get("currentVersion") == version
                and self.condition(s, "Progressing").get("reason") == "RolledOut"
            ),
            f"to serve version {version}, rolled out",
            timeout=timeout,
        )


@pytest.fixture
def resources(crd_api: kubernetes.client.CustomObjectsApi, namespace: str) -> Resources:
    """Our custom resources in the test's namespace."""
    return Resources(crd_api, namespace)
