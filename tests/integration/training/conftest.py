"""Fixtures for the training path: datasets in the sandbox S3, the operator, the API."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from mlops_operator.sandbox.process import wait_for

GROUP, VERSION = "mlops.dev", "v1alpha1"
DATA_BUCKET = "datasets"


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
        def probe() -> dict[str, Any] | None:
            obj = self.get(plural, name)
            status = (obj or {}).get("status") or {}
            return obj if obj and predicate(status) else None

        return wait_for(f"{plural}/{name} {what}", probe, timeout=timeout)


@pytest.fixture
def resources(crd_api: kubernetes.client.CustomObjectsApi, namespace: str) -> Resources:
    """Our custom resources in the test's namespace."""
    return Resources(crd_api, namespace)
