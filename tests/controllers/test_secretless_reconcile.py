"""An operator without access to Secrets (``s3CheckCredentials: false``): it never reads the
credentials Secret, says the storage check was skipped, and still trains."""

from __future__ import annotations

import pytest

from mlops_operator.kube import client as k8s
from mlops_operator.settings import Settings
from mlops_sandbox.cluster import BUCKET, Sandbox
from tests.controllers.conftest import RUNTIME_IMAGE, Cluster, condition, state
from tests.support.factories import trainingjob


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    """The sandbox settings, with the operator kept away from Secrets."""
    return Settings(
        runtime_image=RUNTIME_IMAGE,
        s3_endpoint=sandbox.s3_endpoint,
        s3_bucket=BUCKET,
        s3_region="us-east-1",
        s3_check_credentials=False,
    )


async def test_the_storage_check_is_skipped_and_the_job_still_gets_the_secret(
    cluster: Cluster,
) -> None:
    # The Secret does not exist: an operator that read it would wait with CredentialsMissing.
    storage = {"credentialsSecret": {"name": "pod-only-creds"}}
    await cluster.create(trainingjob("tj", "iris", cluster.dataset(), storage=storage))

    await cluster.reconcile("TrainingJob", "tj")

    tj = await cluster.obj("TrainingJob", "tj")
    assert state(tj, "StorageReachable") == ("Unknown", "StorageCheckSkipped")
    assert "does not read credentials Secrets" in condition(tj, "StorageReachable")["message"]
    job = await cluster.get(k8s.JOBS, "tj-train")
    assert job is not None
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs == {"pod-only-creds"}
    assert "CredentialsMissing" not in await cluster.reasons("tj")
