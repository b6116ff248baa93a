"""The workload runner's Deployments against the sandbox API, with an HTTP stand-in server.

``fake_workload.py serve PORT`` plays the model server: it binds ``$MLOPS_SERVE_HOST``, its
``/ready`` and ``/live`` fail while a marker file exists in the pod's directory, and
``/whoami`` says which pod answered.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mlops_sandbox.apiserver import serve_api
from mlops_sandbox.runner import ApiError, KubeClient, Runner
from tests.support import eventually

FAKE_WORKLOAD = pathlib.Path(__file__).with_name("fake_workload.py")
NS = "default"
PORT = 18080
Json = dict[str, Any]


def server_container(version: str = "v1", **extra: Any) -> Json:
    """The stand-in server's container: named port, readiness and liveness probes."""
    return {
        "name": "server",
        "image": "runtime",
        "command": ["mlops-operator", "serve", str(PORT)],
        "env": [
            {"name": "FAKE_VERSION", "value": version},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            # A manifest made for a cluster binds every address; the sandbox overrides it.
            {"name": "MLOPS_SERVE_HOST", "value": "0.0.0.0"},
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": PORT},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        **extra,
    }


class Cluster:
    """The API, a client of it, and a runner with short probe periods and backoffs."""

    def __init__(self, url: str, session: aiohttp.ClientSession, state_dir: pathlib.Path) -> None:
        self.url = url
        self.session = session
        self.client = KubeClient(session, url)
        self.state_dir = state_dir
        self.runner = self.new_runner()

    def new_runner(self) -> Runner:
        return Runner(
            self.url,
            self.state_dir,
            entrypoint=[sys.executable, str(FAKE_WORKLOAD)],
            backoff_base=0.1,
            backoff_cap=0.4,
            config_retry_seconds=0.1,
            max_grace_seconds=1.0,
            max_probe_period=0.2,
        )

    async def create_deployment(
        self, name: str, replicas: int = 2, container: Json | None = None, **spec: Any
    ) -> Json:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container or server_container()]},
                },
                **spec,
            },
        }
        path = f"/apis/apps/v1/namespaces/{NS}/deployments"
        return await self.client.request("POST", path, body=body)

    async def deployment(self, name: str) -> Json:
        return await self.client.request("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/{name}")

    async def patch_deployment(self, name: str, patch: Json) -> Json:
        path = f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"
        return await self.client.merge_patch(path, patch)

    async def pods(self, app: str) -> list[Json]:
        listing = await self.client.request(
            "GET", f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": f"app={app}"}
        )
        items: list[Json] = listing["items"]
        return items

    async def rolled_out(self, name: str, replicas: int) -> Json | None:
        """The Deployment once its rollout is complete with ``replicas`` available pods."""
        deployment = await self.deployment(name)
        status = deployment.get("status") or {}
        progressing = _condition(deployment, "Progressing")
        done = (
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and progressing.get("reason") == "NewReplicaSetAvailable"
        )
        return deployment if done else None

    async def get_json(self, url: str) -> Json:
        async with self.session.get(url, headers={"Connection": "close"}) as response:
            assert response.status == 200, await response.text()
            result: Json = await response.json()
            return result

    def home(self, pod: Json) -> pathlib.Path:
        meta = pod["metadata"]
        return self.runner.pod_directory(meta["namespace"], meta["name"]) / "home"


def _condition(obj: Json, kind: str) -> Json:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def _container_status(pod: Json) -> Json:
    statuses: list[Json] = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    async with serve_api() as (api, url), aiohttp.ClientSession() as session:
        cluster = Cluster(url, session, tmp_path / "runner")
        api.log_provider = cluster.runner.read_log
        await cluster.runner.start()
        try:
            yield cluster
        finally:
            await cluster.runner.stop()


async def test_replicas_get_their_own_addresses_become_ready_and_are_counted(
    cluster: Cluster,
) -> None:
    created = await cluster.create_deployment("web", replicas=2)
    deployment = await eventually(lambda: cluster.rolled_out("web", 2))

    status = deployment["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert (status["replicas"], status["updatedReplicas"]) == (2, 2)
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 2)
    assert "unavailableReplicas" not in status
    available = _condition(deployment, "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert available["message"] == "Deployment has minimum availability."
    progressing = _condition(deployment, "Progressing")
    assert progressing["status"] == "True"

    pods = await cluster.pods("web")
    assert len(pods) == 2
    addresses = set()
    for pod in pods:
        meta, pod_status = pod["metadata"], pod["status"]
        pod_hash = meta["labels"]["pod-template-hash"]
        assert re.fullmatch(rf"web-{pod_hash}-[a-z0-9]{{5}}", meta["name"])
        assert progressing["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Deployment",
            "web",
            created["metadata"]["uid"],
            True,
        )
        ip = pod_status["podIP"]
        assert re.fullmatch(r"127\.0\.\d+\.\d+", ip) and ip != "127.0.0.1"
        assert pod_status["hostIP"] == "127.0.0.1"
        assert pod_status["phase"] == "Running"
        assert _condition(pod, "Ready")["status"] == "True"
        assert _container_status(pod)["ready"] is True
        assert _container_status(pod)["restartCount"] == 0
        # The process binds the pod's own address (MLOPS_SERVE_HOST), and the downward API
        # gives it the same one.
        whoami = await cluster.get_json(f"http://{ip}:{PORT}/whoami")
        assert whoami["pod"] == meta["name"]
        assert whoami["ip"] == whoami["pod_ip"] == ip
        addresses.add(ip)
    assert len(addresses) == 2


async def test_liveness_failure_restarts_the_container(cluster: Cluster) -> None:
    await cluster.create_deployment("alive", replicas=1)
    await eventually(lambda: cluster.rolled_out("alive", 1))
    [pod] = await cluster.pods("alive")
    before = await cluster.get_json(f"http://{pod['status']['podIP']}:{PORT}/whoami")

    (cluster.home(pod) / "not-live").touch()

    async def restarted() -> Json | None:
        [current] = await cluster.pods("alive")
        return current if _container_status(current)["restartCount"] >= 1 else None

    restarted_pod = await eventually(restarted)
    (cluster.home(pod) / "not-live").unlink()
    assert restarted_pod["metadata"]["name"] == pod["metadata"]["name"]
    last = _container_status(restarted_pod)["lastState"]["terminated"]
    # Killed with SIGTERM, on which the server (like uvicorn) exits cleanly.
    assert (last["exitCode"], last["reason"]) == (0, "Completed")
    await eventually(lambda: cluster.rolled_out("alive", 1))
    [pod] = await cluster.pods("alive")
    after = await cluster.get_json(f"http://{pod['status']['podIP']}:{PORT}/whoami")
    assert after["pid"] != before["pid"]
    assert _container_status(pod)["restartCount"] == 1


async def test_a_crashing_container_backs_off_and_counts_restarts(cluster: Cluster) -> None:
    container = server_container(command=["mlops-operator", "fail", "model", "missing"])
    await cluster.create_deployment("crash", replicas=1, container=container)

    async def crash_looping() -> Json | None:
        pods = await cluster.pods("crash")
        if not pods:
            return None
        state = _container_status(pods[0])
        waiting = (state.get("state") or {}).get("waiting") or {}
        looping = waiting.get("reason") == "CrashLoopBackOff" and state["restartCount"] >= 2
        return pods[0] if looping else None

    pod = await eventually(crash_looping)
    state = _container_status(pod)
    assert pod["status"]["phase"] == "Running"
    assert state["ready"] is False
    assert "back-off" in state["state"]["waiting"]["message"]
    terminated = state["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (3, "model missing")
    deployment = await cluster.deployment("crash")
    assert deployment["status"]["unavailableReplicas"] == 1
    assert _condition(deployment, "Available")["reason"] == "MinimumReplicasUnavailable"


async def test_a_command_other_than_mlops_operator_is_not_restarted(cluster: Cluster) -> None:
    container = server_container(command=["sh", "-c", "sleep 60"])
    await cluster.create_deployment("shell", replicas=1, container=container)

    async def create_error() -> Json | None:
        pods = await cluster.pods("shell")
        waiting = (_container_status(pods[0]).get("state") or {}).get("waiting") if pods else None
        return pods[0] if (waiting or {}).get("reason") == "CreateContainerError" else None

    pod = await eventually(create_error)
    await asyncio.sleep(0.5)
    [again] = await cluster.pods("shell")
    assert again["metadata"]["name"] == pod["metadata"]["name"]
    assert again["status"]["phase"] == "Pending"
    assert _container_status(again)["restartCount"] == 0
    assert (
        "only runs 'mlops-operator' commands"
        in (_container_status(again)["state"]["waiting"]["message"])
    )


async def test_scaling_to_zero_and_back(cluster: Cluster) -> None:
    await cluster.create_deployment("scaled", replicas=1)
    await eventually(lambda: cluster.rolled_out("scaled", 1))
    [pod] = await cluster.pods("scaled")
    pid = (await cluster.get_json(f"http://{pod['status']['podIP']}:{PORT}/whoami"))["pid"]

    scale = f"/apis/apps/v1/namespaces/{NS}/deployments/scaled/scale"
    await cluster.client.merge_patch(scale, {"spec": {"replicas": 0}})
    deployment = await eventually(lambda: cluster.rolled_out("scaled", 0))
    assert not await cluster.pods("scaled")
    assert await eventually(lambda: _dead(pid), timeout=5)
    assert set(deployment["status"]) == {"observedGeneration", "conditions"}

    await cluster.patch_deployment("scaled", {"spec": {"replicas": 3}})
    await eventually(lambda: cluster.rolled_out("scaled", 3))
    assert len(await cluster.pods("scaled")) == 3


async def _dead(pid: int) -> bool:
    return not _alive(pid)


async def test_deleting_the_deployment_stops_its_processes(cluster: Cluster) -> None:
    await cluster.create_deployment("doomed", replicas=2)
    await eventually(lambda: cluster.rolled_out("doomed", 2))
    pids = [
        (await cluster.get_json(f"http://{pod['status']['podIP']}:{PORT}/whoami"))["pid"]
        for pod in await cluster.pods("doomed")
    ]
    assert all(_alive(pid) for pid in pids)

    await cluster.client.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/doomed")

    async def all_dead() -> bool:
        return not any(_alive(pid) for pid in pids)

    assert await eventually(all_dead, timeout=20)
    assert not await cluster.pods("doomed")  # garbage-collected by their owner reference
    assert not cluster.runner.addresses.in_use()


async def test_a_restarted_runner_replaces_pods_that_lost_their_process(
    cluster: Cluster,
) -> None:
    await cluster.create_deployment("phoenix", replicas=2)
    await eventually(lambda: cluster.rolled_out("phoenix", 2))
    before = {pod["metadata"]["name"] for pod in await cluster.pods("phoenix")}

    await cluster.runner.stop()
    cluster.runner = cluster.new_runner()
    await cluster.runner.start()

    async def replaced() -> set[str] | None:
        pods = await cluster.pods("phoenix")
        names = {pod["metadata"]["name"] for pod in pods}
        ready = all(_condition(pod, "Ready").get("status") == "True" for pod in pods)
        return names if len(names) == 2 and not names & before and ready else None

    await eventually(replaced)
    await eventually(lambda: cluster.rolled_out("phoenix", 2))


async def test_a_pod_deleted_by_hand_is_replaced(cluster: Cluster) -> None:
    await cluster.create_deployment("hydra", replicas=1)
    await eventually(lambda: cluster.rolled_out("hydra", 1))
    [pod] = await cluster.pods("hydra")
    pid = (await cluster.get_json(f"http://{pod['status']['podIP']}:{PORT}/whoami"))["pid"]

    await cluster.client.request(
        "DELETE", f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}"
    )

    assert await eventually(lambda: _dead(pid), timeout=5)
    await eventually(lambda: cluster.rolled_out("hydra", 1))
    [replacement] = await cluster.pods("hydra")
    assert replacement["metadata"]["name"] != pod["metadata"]["name"]


async def test_a_deployment_in_a_deleted_namespace_stops(cluster: Cluster) -> None:
    await cluster.client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "gone"}})
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ghost"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "ghost"}},
            "template": {
                "metadata": {"labels": {"app": "ghost"}},
                "spec": {"containers": [server_container()]},
            },
        },
    }
    await cluster.client.request("POST", "/apis/apps/v1/namespaces/gone/deployments", body=body)

    async def serving() -> int | None:
        listing = await cluster.client.request("GET", "/api/v1/namespaces/gone/pods")
        ready = [p for p in listing["items"] if _condition(p, "Ready").get("status") == "True"]
        if not ready:
            return None
        url = f"http://{ready[0]['status']['podIP']}:{PORT}/whoami"
        pid: int = (await cluster.get_json(url))["pid"]
        return pid

    pid = await eventually(serving)
    await cluster.client.request("DELETE", "/api/v1/namespaces/gone")
    assert await eventually(lambda: _dead(pid), timeout=5)
    with pytest.raises(ApiError):
        await cluster.client.request("GET", "/apis/apps/v1/namespaces/gone/deployments/ghost")
