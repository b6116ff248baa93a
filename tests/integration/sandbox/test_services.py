"""The workload runner's Service forwarders, over real TCP and HTTP to stand-in servers."""

from __future__ import annotations

import asyncio
import collections
import json
import pathlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kubernetes
import pytest

from mlops_sandbox.apiserver import serve_api
from mlops_sandbox.cluster import Sandbox
from mlops_sandbox.runner import KubeClient, Runner
from tests.support import eventually

FAKE_WORKLOAD = pathlib.Path(__file__).with_name("fake_workload.py")
NS = "default"
PORT = 18090
ADDRESS = "sandbox.mlops.dev/address"
Json = dict[str, Any]


def _container(version: str) -> Json:
    return {
        "name": "server",
        "image": "runtime",
        "command": ["mlops-operator", "serve", str(PORT)],
        "env": [{"name": "FAKE_VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }


class Cluster:
    """The API, a client of it, and a runner with short probe periods."""

    def __init__(self, url: str, session: aiohttp.ClientSession, state_dir: pathlib.Path) -> None:
        self.client = KubeClient(session, url)
        self.session = session
        self.state_dir = state_dir
        self.runner = Runner(
            url,
            state_dir,
            entrypoint=[sys.executable, str(FAKE_WORKLOAD)],
            backoff_base=0.1,
            backoff_cap=0.4,
            max_grace_seconds=1.0,
            max_probe_period=0.2,
        )

    async def deploy(self, name: str, replicas: int = 2, version: str = "v1") -> None:
        """Create the Deployment, or change its version and replicas."""
        template = {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [_container(version)]},
        }
        path = f"/apis/apps/v1/namespaces/{NS}/deployments"
        if await self.client.get_or_none(f"{path}/{name}") is not None:
            spec = {"replicas": replicas, "template": template}
            await self.client.merge_patch(f"{path}/{name}", {"spec": spec})
            return
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": template,
            },
        }
        await self.client.request("POST", path, body=body)

    async def create_service(self, name: str, app: str, ports: list[Json] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "selector": {"app": app},
                "ports": ports or [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
        await self.client.request("POST", f"/api/v1/namespaces/{NS}/services", body=body)

    async def address(self, service: str) -> str:
        async def annotated() -> str | None:
            obj = await self.client.request("GET", f"/api/v1/namespaces/{NS}/services/{service}")
            address: str | None = (obj["metadata"].get("annotations") or {}).get(ADDRESS)
            return address

        result: str = await eventually(annotated)
        return result

    async def rolled_out(self, name: str, replicas: int) -> bool:
        deployment = await self.client.request(
            "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"
        )
        status = deployment.get("status") or {}
        conditions = {c["type"]: c["reason"] for c in status.get("conditions") or []}
        return (
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and conditions.get("Progressing") == "NewReplicaSetAvailable"
        )

    async def pods(self, app: str) -> list[Json]:
        listing = await self.client.request(
            "GET", f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": f"app={app}"}
        )
        items: list[Json] = listing["items"]
        return items

    async def whoami(self, address: str) -> Json:
        async with self.session.get(
            f"{address}/whoami", headers={"Connection": "close"}
        ) as response:
            assert response.status == 200, await response.text()
            result: Json = await response.json()
            return result


@pytest.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    async with serve_api() as (_, url), aiohttp.ClientSession() as session:
        cluster = Cluster(url, session, tmp_path / "runner")
        await cluster.runner.start()
        try:
            yield cluster
        finally:
            await cluster.runner.stop()


async def test_a_service_balances_over_its_ready_pods_and_is_recorded(cluster: Cluster) -> None:
    await cluster.deploy("web", replicas=2)
    await cluster.create_service(
        "web",
        "web",
        ports=[
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "direct", "port": 8080, "targetPort": PORT},
        ],
    )
    address = await cluster.address("web")
    await eventually(lambda: cluster.rolled_out("web", 2))

    seen = collections.Counter([(await cluster.whoami(address))["pod"] for _ in range(6)])
    assert sorted(seen) == sorted(p["metadata"]["name"] for p in await cluster.pods("web"))
    assert set(seen.values()) == {3}  # round-robin

    service = await cluster.client.request("GET", f"/api/v1/namespaces/{NS}/services/web")
    addresses = json.loads(service["metadata"]["annotations"]["sandbox.mlops.dev/addresses"])
    assert addresses["http"] == address
    assert (await cluster.whoami(addresses["direct"]))["version"] == "v1"
    lines = cluster.runner.services_file.read_text().splitlines()
    assert f"{NS}/web {address}" in lines
    assert f"{NS}/web:direct {addresses['direct']}" in lines


async def test_a_pod_failing_readiness_leaves_the_service(cluster: Cluster) -> None:
    await cluster.deploy("picky", replicas=2)
    await cluster.create_service("picky", "picky")
    address = await cluster.address("picky")
    await eventually(lambda: cluster.rolled_out("picky", 2))
    sick, healthy = await cluster.pods("picky")
    meta = sick["metadata"]
    home = cluster.runner.pod_directory(meta["namespace"], meta["name"]) / "home"

    (home / "not-ready").touch()

    async def not_ready() -> bool:
        deployment = await cluster.client.request(
            "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/picky"
        )
        return bool(deployment["status"].get("readyReplicas") == 1)

    await eventually(not_ready)
    answers = {(await cluster.whoami(address))["pod"] for _ in range(4)}
    assert answers == {healthy["metadata"]["name"]}

    (home / "not-ready").unlink()
    await eventually(lambda: cluster.rolled_out("picky", 2))
    answers = {(await cluster.whoami(address))["pod"] for _ in range(4)}
    assert len(answers) == 2


async def test_a_rollout_keeps_the_service_answering(cluster: Cluster) -> None:
    await cluster.deploy("roll", replicas=2, version="v1")
    await cluster.create_service("roll", "roll")
    address = await cluster.address("roll")
    await eventually(lambda: cluster.rolled_out("roll", 2))
    old_pods = {p["metadata"]["name"] for p in await cluster.pods("roll")}

    versions: list[str] = []
    failures: list[str] = []
    reasons: set[str] = set()
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            try:
                versions.append((await cluster.whoami(address))["version"])
            except (aiohttp.ClientError, AssertionError) as e:
                failures.append(repr(e))

    poller = asyncio.create_task(poll())
    await cluster.deploy("roll", replicas=2, version="v2")

    async def finished() -> bool:
        deployment = await cluster.client.request(
            "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/roll"
        )
        reasons.update(c["reason"] for c in deployment["status"].get("conditions") or [])
        pods = await cluster.pods("roll")
        return await cluster.rolled_out("roll", 2) and len(pods) == 2

    await eventually(finished, timeout=20)
    await asyncio.sleep(0.2)  # the old pods' removal reaches the forwarder
    settled = len(versions)
    await asyncio.sleep(0.3)
    done.set()
    await poller

    assert not failures, failures[:3]
    assert "v1" in versions[:settled] and "v2" in versions[:settled]
    assert set(versions[settled:]) == {"v2"}
    assert "ReplicaSetUpdated" in reasons
    new_pods = {p["metadata"]["name"] for p in await cluster.pods("roll")}
    assert not new_pods & old_pods


async def test_no_ready_endpoint_closes_the_connection_at_once(cluster: Cluster) -> None:
    await cluster.create_service("empty", "nobody")
    address = await cluster.address("empty")
    host, port = address.removeprefix("http://").split(":")

    reader, writer = await asyncio.open_connection(host, int(port))
    async with asyncio.timeout(2):
        assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


async def test_deleting_a_service_stops_its_forwarder(cluster: Cluster) -> None:
    await cluster.create_service("brief", "nobody")
    address = await cluster.address("brief")
    host, port = address.removeprefix("http://").split(":")

    await cluster.client.request("DELETE", f"/api/v1/namespaces/{NS}/services/brief")

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        return False

    assert await eventually(refused)
    assert f"{NS}/brief" not in cluster.runner.services_file.read_text()


def test_the_sandbox_records_service_addresses(
    sandbox: Sandbox, namespace: str, kube: kubernetes.client.ApiClient
) -> None:
    # Any: the client's models make every field Optional, which only adds noise.
    core: Any = kubernetes.client.CoreV1Api(kube)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]},
        },
    )
    deadline = time.monotonic() + 10
    while (address := sandbox.service_address(namespace, "svc")) is None:
        assert time.monotonic() < deadline, "the Service got no address"
        time.sleep(0.05)
    assert address.startswith("http://127.0.0.1:")
    assert f"{namespace}/svc {address}" in sandbox.services_file.read_text().splitlines()
    assert sandbox.service_address(namespace, "absent") is None
