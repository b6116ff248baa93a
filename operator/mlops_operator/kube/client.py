"""The operator's only door to the Kubernetes API: a thin async wrapper over the
``kubernetes`` client's ``ApiClient``, with every error turned into one typed policy:
404 ``NotFound`` and 409 ``Conflict`` are expected and handled where they happen; 400/422
``Invalid`` (the server rejected what we built from a user's spec) waits for a spec change;
429, 5xx and timeouts are ``Transient`` and retried with backoff (honouring Retry-After)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from mlops_operator import __version__
from mlops_operator.api.base import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts of one API call, in seconds."""
USER_AGENT = "mlops-operator"
"""The product name of the operator's requests; the process id follows the version."""


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
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")


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
    """400 or 422: the server rejected the object (a quantity it cannot decode, a name or a
    label it does not allow). Retrying the same object cannot succeed."""


class Transient(KubeError):
    """429, 5xx, a timeout or a refused connection: may heal; retry after ``retry_after``
    seconds when the server said so (Retry-After)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error(
    status: int, raw: bytes | str | None, headers: Mapping[str, str] | None = None
) -> KubeError:
    message = ""
    try:
        message = json.loads(raw or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    if status in (400, 422):
        return Invalid(status, message)
    if status == 429 or status >= 500 or status == 0:
        return Transient(status, message or "no answer", _retry_after(headers))
    cls = {404: NotFound, 409: Conflict}.get(status, KubeError)
    return cls(status, message)


class Kube:
    """Async CRUD over any resource path; calls run in a thread (the client is synchronous)."""

    def __init__(self, api_client: kubernetes.client.ApiClient, threads: int = 48) -> None:
        self._client = api_client
        # The client is synchronous: its calls run on a pool of their own, sized like its
        # connection pool, so a burst never waits behind the event loop's default executor.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="kube")
        self.requests = 0
        """API calls made so far (the controller tests assert a reconcile made none)."""

    @classmethod
    def from_environment(cls, agent: str = USER_AGENT) -> Kube:
        """In-cluster service account if there is one, else the current kubeconfig. Requests
        carry the User-Agent ``<agent>/<version> (pid N)``, so API audit logs tell the
        operator's calls from a person's or the registration command's (and from other
        tools' generated clients, which all say ``OpenAPI-Generator``)."""

        configuration = kubernetes.client.Configuration()
        configuration.connection_pool_maxsize = 48
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        client = kubernetes.client.ApiClient(configuration)
        # Audit logs (and the sandbox's chaos tests) tell the operator's replicas apart.
        client.user_agent = f"{agent}/{__version__} (pid {os.getpid()})"
        return cls(client)

    def close(self) -> None:
        """Release the client's connection pool."""
        self._client.close()  # type: ignore[no-untyped-call]
        self._pool.shutdown(wait=False, cancel_futures=True)

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
            raise _error(exc.status or 0, exc.body, exc.headers) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise Transient(0, f"{method} {path}: {exc}") from None
        raw = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _error(response.status, raw, response.getheaders())  # type: ignore[no-untyped-call]
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
        self.requests += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool,
            lambda: self._call(method, path, body=body, query=query, content_type=content_type),
        )

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        """Read one object; raises ``NotFound``."""
        result: dict[str, Any] = await self.request("GET", res.path(namespace, name))
        return result

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
