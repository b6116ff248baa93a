"""Each controller's reconcile called in-process against the sandbox API and S3.

The sandbox here runs no workloads: its runner would start a trainer for every Job and a
server for every Deployment and write their status while a test does. Instead a test plays
the kubelet and the Job and Deployment controllers itself, writing the child's status over
HTTP (a Job Complete, a Deployment ready), so every step is one reconcile and one assertion:
no polling. ``Watches.sync`` stands in for kopf's watches before and after each reconcile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest

from mlops_operator.artifacts.layout import file_uri
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.main import CONTROLLERS, build_context
from mlops_operator.settings import Settings
from mlops_operator.training.build import OUTPUT_ANNOTATION
from mlops_sandbox.cluster import BUCKET, Sandbox
from tests.support.factories import digest_of, modelversion, trainer_output
from tests.support.watch import Watches

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RUNTIME_IMAGE = "mlops-operator-runtime:sandbox"
DATA_BUCKET = "datasets"
PLURALS = {
    "TrainingJob": k8s.TRAININGJOBS,
    "ModelVersion": k8s.MODELVERSIONS,
    "InferenceService": k8s.INFERENCESERVICES,
}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The API emulator and S3, without the workload runner (see the module docstring)."""
    with Sandbox(tmp_path_factory.mktemp("controllers"), run_workloads=False) as started:
        yield started


def _api_client(sandbox: Sandbox, agent: str = "controller-tests") -> kubernetes.client.ApiClient:
    """A client of the sandbox API whose requests say ``agent`` (the operator's own
    ``mlops-operator``, so fault rules and the request log tell its calls from the test's)."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig), client_configuration=configuration
    )
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = f"{agent}/test"
    return client


def condition(obj: dict[str, Any] | None, type: str) -> dict[str, Any]:
    """The condition of a type in an object's status (empty when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type:
            return dict(cond)
    return {}


def state(obj: dict[str, Any] | None, type: str) -> tuple[str | None, str | None]:
    """A condition's (status, reason)."""
    cond = condition(obj, type)
    return cond.get("status"), cond.get("reason")


class Cluster:
    """One test's namespace: the operator's context reconciling in-process, and a person's
    client (``user``) that creates objects and plays the workload controllers."""

    def __init__(
        self, ctx: Context, user: k8s.Kube, namespace: str, s3: S3Client, sandbox: Sandbox
    ) -> None:
        self.ctx = ctx
        self.user = user
        self.namespace = namespace
        self.s3 = s3
        self.sandbox = sandbox
        self.watches = Watches(ctx, user, namespace)

    # --- the operator ---------------------------------------------------------------------

    async def reconcile(self, kind: str, name: str, *, lagging: bool = False) -> float | None:
        """One reconcile of ``kind``/``name`` between two syncs of the watch state;
        ``lagging`` skips the first, as when the watch has not delivered the latest changes."""
        res = PLURALS[kind]
        if not lagging:
            await self.watches.sync()
        result: float | None = await CONTROLLERS[res.plural](self.ctx, (self.namespace, name))
        assert self.ctx.events is not None
        await self.ctx.events.drain()  # so Events of two reconciles never interleave
        await self.watches.sync()
        return result

    async def restart(self) -> None:
        """A new operator process: the old one's memory (cache, remembered writes, stores)
        is gone; only what is in the cluster remains."""
        assert self.ctx.events is not None
        await self.ctx.events.drain()
        self.ctx.kube.close()
        self.ctx = build_context(
            self.ctx.settings, k8s.Kube(_api_client(self.sandbox, k8s.USER_AGENT))
        )
        self.watches = Watches(self.ctx, self.user, self.namespace)

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of every Event about ``name``, oldest first (the Events of
        one reconcile are posted together, in any order)."""
        assert self.ctx.events is not None
        await self.ctx.events.drain()
        found = await self.user.list(k8s.EVENTS, self.namespace)
        found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [
            (e["type"], e["reason"], e["message"])
            for e in found
            if e["involvedObject"]["name"] == name
        ]

    async def reasons(self, name: str) -> list[str]:
        """The reasons of every Event about ``name``."""
        return [reason for _, reason, _ in await self.events(name)]

    # --- a person's client ----------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create one of our resources in the namespace."""
        return await self.user.create(PLURALS[body["kind"]], self.namespace, body)

    async def get(self, res: k8s.Resource, name: str) -> dict[str, Any] | None:
        """Read an object, None when absent."""
        try:
            return await self.user.get(res, self.namespace, name)
        except k8s.NotFound:
            return None

    async def obj(self, kind: str, name: str) -> dict[str, Any]:
        """Read one of our resources (it must exist)."""
        return await self.user.get(PLURALS[kind], self.namespace, name)

    async def patch(self, res: k8s.Resource, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an object, as ``kubectl patch --type merge`` does."""
        return await self.user.patch(res, self.namespace, name, patch)

    async def delete(self, res: k8s.Resource, name: str) -> None:
        """Delete an object."""
        await self.user.delete(res, self.namespace, name)

    # --- the workload controllers, played by the test -------------------------------------

    async def job_status(self, name: str, status: dict[str, Any]) -> None:
        """Write a Job's status, as the Job controller would."""
        await self.user.patch_status(k8s.JOBS, self.namespace, name, status)

    async def job_complete(self, name: str) -> None:
        """Mark a Job Complete."""
        stamp = "2026-01-01T00:00:00Z"
        await self.job_status(
            name,
            {
                "startTime": stamp,
                "completionTime": stamp,
                "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True", "reason": "Done"}],
            },
        )

    async def deployment_ready(self, name: str, replicas: int = 1) -> None:
        """Mark a Deployment's current template rolled out and ready."""
        deployment = await self.user.get(k8s.DEPLOYMENTS, self.namespace, name)
        await self.user.patch_status(
            k8s.DEPLOYMENTS,
            self.namespace,
            name,
            {
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            },
        )

    async def train(self, name: str, metrics: dict[str, float], **manifest: Any) -> dict[str, Any]:
        """Run an existing TrainingJob to success: a reconcile creates its Job, the trainer's
        files go where the Job says (``manifest`` adds to its manifest), the Job is marked
        Complete, a reconcile registers the version. The TrainingJob after it."""
        await self.reconcile("TrainingJob", name)
        tj = await self.obj("TrainingJob", name)
        await self.trainer_succeeds(
            tj["status"]["jobName"], metrics, f"{name} model".encode(), **manifest
        )
        await self.reconcile("TrainingJob", name)
        return await self.obj("TrainingJob", name)

    async def trainer_succeeds(
        self, job_name: str, metrics: dict[str, float], model: bytes, **manifest: Any
    ) -> None:
        """Play the trainer and the Job controller: the trainer's files where the Job says
        (``manifest`` adds to its manifest), then the Job Complete."""
        job = await self.user.get(k8s.JOBS, self.namespace, job_name)
        run_uri = job["metadata"]["annotations"][OUTPUT_ANNOTATION]
        for file, content in trainer_output(model, metrics, **manifest).items():
            self.put(file_uri(run_uri, file), content)
        await self.job_complete(job_name)

    # --- storage --------------------------------------------------------------------------

    def put(self, uri: str, content: bytes) -> None:
        """Write one object at an ``s3://`` URI."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=content)

    def dataset(self) -> str:
        """A small CSV dataset of this namespace; its URI."""
        try:
            self.s3.create_bucket(Bucket=DATA_BUCKET)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        uri = f"s3://{DATA_BUCKET}/{self.namespace}/data.csv"
        self.put(uri, b"a,b,target\n1,2,0\n3,4,1\n")
        return uri

    def version_uri(self, model: str, version: int) -> str:
        """Where a version of a model registered by hand keeps its artifact."""
        return f"s3://{BUCKET}/by-hand/{self.namespace}/{model}/{version}/"

    async def version(
        self,
        model: str,
        version: int,
        *,
        content: bytes | None = None,
        ready: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Upload an artifact, register ModelVersion ``<model>-v<version>`` by hand and (with
        ``ready``) reconcile it once, so it is verified."""
        data = content if content is not None else f"{model} {version}".encode()
        uri = self.version_uri(model, version)
        self.put(file_uri(uri, "model.joblib"), data)
        await self.create(modelversion(model, version, uri, digest_of(data), **fields))
        if ready:
            await self.reconcile("ModelVersion", f"{model}-v{version}")
        return await self.obj("ModelVersion", f"{model}-v{version}")


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    """The operator's settings pointed at the sandbox S3."""
    return Settings(
        runtime_image=RUNTIME_IMAGE,
        s3_endpoint=sandbox.s3_endpoint,
        s3_bucket=BUCKET,
        s3_region="us-east-1",
        storage_check_timeout_seconds=3.0,
    )


@pytest.fixture
async def cluster(
    sandbox: Sandbox, namespace: str, settings: Settings, s3: S3Client
) -> AsyncIterator[Cluster]:
    """The operator's context and a person's client, both over HTTP to the sandbox."""
    ctx = build_context(settings, k8s.Kube(_api_client(sandbox, k8s.USER_AGENT)))
    user = k8s.Kube(_api_client(sandbox))
    cluster = Cluster(ctx, user, namespace, s3, sandbox)
    try:
        yield cluster
    finally:
        assert cluster.ctx.events is not None
        await cluster.ctx.events.drain()
        cluster.ctx.kube.close()
        user.close()
