"""The sandbox's Services: kube-proxy as TCP forwarders on the host's loopback.

For every v1 Service with a ``selector`` the runner listens on ``127.0.0.1:<free port>`` for
each of its TCP ports and forwards each connection to the next READY pod that matches the
selector in the Service's namespace (round-robin), at the port's ``targetPort`` (a number,
or a name looked up in that pod's container ports; default: ``port``). With no ready pod a
connection is closed at once; a pod that refuses the connection is skipped for the next one.

Where to connect is recorded for tests, the demo and people:

- the annotation ``sandbox.mlops.dev/address: http://127.0.0.1:PORT`` on the Service (the
  first port's forwarder; with several ports, ``sandbox.mlops.dev/addresses`` maps each
  port's name, or number, to its address as JSON);
- a line ``namespace/name http://127.0.0.1:PORT`` per Service in the services file
  (``namespace/name:PORT_NAME …`` for ports after the first).

A forwarder keeps its port while its Service exists (and, across runner restarts, the port
of the annotation when it is still free); deleting the Service closes it. Not emulated:
cluster IPs, DNS names, headless Services (``clusterIP: None``), UDP/SCTP ports,
``sessionAffinity``, ``externalTrafficPolicy``, and Endpoints/EndpointSlice objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops_sandbox.runner import (
    ApiError,
    Informer,
    Json,
    KubeClient,
    ObjectName,
    object_name,
)

logger = logging.getLogger(__name__)

ADDRESS_ANNOTATION = "sandbox.mlops.dev/address"
ADDRESSES_ANNOTATION = "sandbox.mlops.dev/addresses"
HOST = "127.0.0.1"

Endpoint = tuple[str, int]

_CHUNK = 256 * 1024
_STREAM_LIMIT = 1024 * 1024
_CONNECT_TIMEOUT = 2.0


# --------------------------------------------------------------------------------------------
# Pure logic: endpoints, ports, the annotations and the services file.
# --------------------------------------------------------------------------------------------


def target_port(pod: Mapping[str, Any], target: int | str) -> int | None:
    """``targetPort`` in ``pod``: a number, or a named port of one of its containers."""
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == "TCP":
                return int(port["containerPort"])
    return None


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Whether a pod serves: running, Ready, with an IP, and not being deleted."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def ready_endpoints(
    pods: Iterable[Mapping[str, Any]],
    namespace: str,
    selector: Mapping[str, str],
    target: int | str,
) -> list[Endpoint]:
    """The ``(podIP, port)`` of every ready pod the Service selects, in pod-name order; a pod
    without the named target port is left out (as the endpoints controller does)."""
    endpoints: list[tuple[str, Endpoint]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("namespace") != namespace or not pod_is_ready(pod):
            continue
        labels = meta.get("labels") or {}
        if any(labels.get(key) != value for key, value in selector.items()):
            continue
        port = target_port(pod, target)
        if port is not None:
            endpoints.append((meta.get("name", ""), (pod["status"]["podIP"], port)))
    return [endpoint for _, endpoint in sorted(endpoints)]


def port_key(port: Mapping[str, Any]) -> str:
    """How a Service port is named in the annotations: its name, else its number."""
    return str(port.get("name") or port.get("port"))


def forwarded_ports(service: Mapping[str, Any]) -> list[Json]:
    """The Service's ports that get forwarders: none without a selector or for a headless
    Service; only TCP ones."""
    spec = service.get("spec") or {}
    if not spec.get("selector") or spec.get("clusterIP") == "None":
        return []
    return [p for p in spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]


def address_annotations(addresses: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """The annotations for a Service's forwarders, ``(port key, URL)`` in spec order; ``None``
    removes an annotation (as in a merge patch)."""
    if not addresses:
        return {ADDRESS_ANNOTATION: None, ADDRESSES_ANNOTATION: None}
    several = json.dumps(dict(addresses)) if len(addresses) > 1 else None
    return {ADDRESS_ANNOTATION: addresses[0][1], ADDRESSES_ANNOTATION: several}


def services_file_text(entries: Mapping[ObjectName, Sequence[tuple[str, str]]]) -> str:
    """The services file: ``namespace/name URL`` per Service (the first port), then
    ``namespace/name:PORT URL`` for its other ports, sorted by Service."""
    lines = ["# Services of the mlops sandbox: namespace/name address (while it runs)"]
    for (namespace, name), addresses in sorted(entries.items()):
        for index, (key, url) in enumerate(addresses):
            suffix = "" if index == 0 else f":{key}"
            lines.append(f"{namespace}/{name}{suffix} {url}")
    return "\n".join(lines) + "\n"


def _preferred_port(service: Mapping[str, Any], key: str, first: bool) -> int:
    """The port a previous runner used for this Service port, from the annotations."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    url: str | None = annotations.get(ADDRESS_ANNOTATION) if first else None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        url = json.loads(annotations.get(ADDRESSES_ANNOTATION) or "{}").get(key, url)
    try:
        return int(str(url).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


# --------------------------------------------------------------------------------------------
# I/O: forwarders, and the proxy that keeps one per Service port.
# --------------------------------------------------------------------------------------------


class Forwarder:
    """One listening socket, forwarding connections to a Service port's ready pods."""

    def __init__(self, pods: Informer, namespace: str) -> None:
        self._pods = pods
        self._namespace = namespace
        self.selector: Mapping[str, str] = {}
        self.target: int | str = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._next = 0
        self._cache_key: tuple[Any, ...] | None = None
        self._endpoints: list[Endpoint] = []
        self.port = 0

    @property
    def url(self) -> str:
        """Where to connect."""
        return f"http://{HOST}:{self.port}"

    async def start(self, preferred_port: int) -> None:
        """Listen on ``preferred_port`` if it is free, else on any free port."""
        for port in dict.fromkeys((preferred_port, 0)):
            try:
                self._server = await asyncio.start_server(
                    self._handle, HOST, port, limit=_STREAM_LIMIT
                )
                break
            except OSError:
                if port == 0:
                    raise
        assert self._server is not None
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def endpoints(self) -> list[Endpoint]:
        """The ready endpoints now, recomputed only when pods or the Service changed."""
        key = (self._pods.version, tuple(sorted(self.selector.items())), self.target)
        if key != self._cache_key:
            self._endpoints = ready_endpoints(
                self._pods.cache.values(), self._namespace, self.selector, self.target
            )
            self._cache_key = key
        return self._endpoints

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            upstream = await self._connect()
            if upstream is not None:
                up_reader, up_writer = upstream
                try:
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                finally:
                    up_writer.close()  # flushes what is buffered, then closes
        except asyncio.CancelledError:
            # Only close() cancels a connection; ending normally matters because Python
            # 3.11's stream server logs an error for every cancelled handler task.
            pass
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the next ready endpoint; endpoints that refuse are skipped (a pod
        may be shutting down before its removal reached the forwarder)."""
        endpoints = self.endpoints()
        for _ in range(len(endpoints)):
            host, port = endpoints[self._next % len(endpoints)]
            self._next += 1
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    return await asyncio.open_connection(host, port, limit=_STREAM_LIMIT)
            except (OSError, TimeoutError) as e:
                logger.debug("Endpoint %s:%d refused a connection: %s", host, port, e)
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close; on an error, abort the other side so the opposite
    direction ends too."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.transport.abort()


class ServiceProxy:
    """Watches Services and keeps a :class:`Forwarder` per forwarded Service port; records
    the addresses in annotations and in ``services_file``."""

    def __init__(self, client: KubeClient, pods: Informer, services_file: pathlib.Path) -> None:
        self._client = client
        self._pods = pods
        self._services_file = services_file
        self.services = Informer(client, "/api/v1/services", self._on_event)
        self._queue: asyncio.Queue[ObjectName] = asyncio.Queue()
        self._forwarders: dict[ObjectName, dict[str, Forwarder]] = {}
        self._uids: dict[ObjectName, str] = {}
        self._written: str | None = None

    def _on_event(self, kind: str, service: Json) -> None:
        self._queue.put_nowait(object_name(service))

    async def run(self) -> None:
        """Watch and forward until cancelled; then close every forwarder."""
        watch = asyncio.create_task(self.services.run(), name="sandbox-runner-watch-services")
        try:
            await self.services.synced.wait()
            self._write_file()
            while True:
                key = await self._queue.get()
                try:
                    await self._sync(key)
                except ApiError as e:
                    logger.warning("Service %s/%s: %s", key[0], key[1], e)
                self._write_file()
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            for key in list(self._forwarders):
                await self._close(key)
            with contextlib.suppress(OSError):
                self._write_file()

    async def _sync(self, key: ObjectName) -> None:
        service = self.services.cache.get(key)
        ports = forwarded_ports(service) if service is not None else []
        uid = str(((service or {}).get("metadata") or {}).get("uid", ""))
        if not ports or self._uids.get(key) != uid:
            await self._close(key)
        if service is None or not ports:
            return
        self._uids[key] = uid
        forwarders = self._forwarders.setdefault(key, {})
        wanted = [port_key(p) for p in ports]
        for name in set(forwarders) - set(wanted):
            await forwarders.pop(name).close()
        selector = (service.get("spec") or {}).get("selector") or {}
        for index, port in enumerate(ports):
            name = port_key(port)
            forwarder = forwarders.get(name)
            if forwarder is None:
                forwarder = Forwarder(self._pods, key[0])
                await forwarder.start(_preferred_port(service, name, index == 0))
                forwarders[name] = forwarder
                logger.info("Service %s/%s port %s: %s", key[0], key[1], name, forwarder.url)
            forwarder.selector = dict(selector)
            forwarder.target = port.get("targetPort") or port.get("port") or 0
        # In spec order: the first port is the one the address annotation names.
        self._forwarders[key] = {name: forwarders[name] for name in wanted}
        await self._annotate(service, [(name, forwarders[name].url) for name in wanted])

    async def _annotate(self, service: Json, addresses: Sequence[tuple[str, str]]) -> None:
        current = (service.get("metadata") or {}).get("annotations") or {}
        wanted = address_annotations(addresses)
        if all(current.get(key) == value for key, value in wanted.items()):
            return
        namespace, name = object_name(service)
        try:
            await self._client.merge_patch(
                f"/api/v1/namespaces/{namespace}/services/{name}",
                {"metadata": {"annotations": wanted}},
            )
        except ApiError as e:
            if e.status != 404:  # deleted meanwhile: its DELETED event follows
                raise

    async def _close(self, key: ObjectName) -> None:
        self._uids.pop(key, None)
        for forwarder in self._forwarders.pop(key, {}).values():
            await forwarder.close()

    def _write_file(self) -> None:
        entries = {
            key: [(name, forwarder.url) for name, forwarder in forwarders.items()]
            for key, forwarders in self._forwarders.items()
            if forwarders
        }
        text = services_file_text(entries)
        if text == self._written:
            return
        # Write and rename, so a reader never sees half a file.
        self._services_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._services_file.with_name(self._services_file.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self._services_file)
        self._written = text
