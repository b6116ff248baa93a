"""Shared fixtures: one sandbox per test session, one namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import kubernetes
import pytest

from mlops_operator.sandbox.cluster import Sandbox
from mlops_operator.sandbox.s3 import client_from_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A started sandbox (API, S3, workload runner) shared by the whole session."""
    with Sandbox(tmp_path_factory.mktemp("sandbox")) as started:
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
