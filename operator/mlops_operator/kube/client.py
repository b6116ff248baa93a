"""The operator's only door to the Kubernetes API: a thin async wrapper over the
``kubernetes`` client's ``ApiClient``, with 404/409/422 turned into typed errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from mlops_operator.api.base import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts of one API call, in seconds."""


@dataclass(frozen=True)
class Resource:
    """A resource kind's REST coordinates."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The REST path of a collection, an object, or an object's subresource."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


TRAININGJOBS = Resource(GROUP, VERSION, "trainingjobs")
MODELVERSIONS = Resource(GROUP, VERSION, "modelversions")
INFERENCESERVICES = Resource(GROUP, VERSION, "inferenceservices")
JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
SERVICES = Resource("", "v1", "services")
SECRETS = Resource("", "v1", "secrets")


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP code and ``message`` the server's words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class NotFound(KubeError):
    """404."""


class Conflict(KubeError):
    """409: already exists, or a stale resourceVersion."""


class Invalid(KubeError):
    """422: the object failed validation."""


def _error(status: int, raw: bytes | str | None) -> KubeError:
    message = ""
    try:
        message = json.loads(raw or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    cls = {404: NotFound, 409: Conflict, 422: Invalid}.get(status, KubeError)
    return cls(status, message)


class Kube:
    """Async CRUD over any resource path; calls run in a thread (the client is synchronous)."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._client = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account if there is one, else the current kubeconfig."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration))

    def close(self) -> None:
        """Release the client's connection pool."""
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        method, url, headers, payload, post = self._client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(
                method,
                url,
                header_params=headers,
                body=payload,
                post_params=post,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            raise _error(exc.status or 0, exc.body) from None
        raw = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _error(response.status, raw)
        return json.loads(raw) if raw else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; the decoded JSON answer."""
        return await asyncio.to_thread(
            self._call, method, path, body=body, query=query, content_type=content_type
        )

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        """Read one object; raises ``NotFound``."""
        result: dict[str, Any] = await self.request("GET", res.path(namespace, name))
        return result

    async def get_or_none(
        self, res: Resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """Read one object, or ``None`` when it does not exist."""
        try:
            return await self.get(res, namespace, name)
        except NotFound:
            return None

    async def list(
        self, res: Resource, namespace: str | None, *, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """List objects, optionally filtered by equality label selectors."""
        query = {}
        if labels:
            query["labelSelector"] = ",".join(f"{k}={v}" for k, v in labels.items())
        result = await self.request("GET", res.path(namespace), query=query)
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    async def create(
        self, res: Resource, namespace: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create an object; raises ``Conflict`` when the name is taken."""
        result: dict[str, Any] = await self.request("POST", res.path(namespace), body=dict(body))
        return result

    async def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """JSON merge-patch an object or one of its subresources."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            body=dict(patch),
            content_type=MERGE_PATCH,
        )
        return result

    async def patch_status(
        self, res: Resource, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource."""
        return await self.patch(
            res, namespace, name, {"status": dict(status)}, subresource="status"
        )

    async def delete(self, res: Resource, namespace: str | None, name: str) -> None:
        """Delete an object (background propagation); a missing object is not an error."""
        try:
            await self.request(
                "DELETE", res.path(namespace, name), body={"propagationPolicy": "Background"}
            )
        except NotFound:
            pass

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded; raises ``NotFound``."""
        secret = await self.get(SECRETS, namespace, name)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        return data
