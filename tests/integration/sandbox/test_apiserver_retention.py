"""What the sandbox API emulator keeps, over real HTTP: Events expire after their TTL (as with
the API server's ``--event-ttl``), removed objects are forgotten, the watch history and the
request log are bounded. A soak runs for hours; none of these may grow with it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mlops_sandbox.apiserver import SandboxAPI, serve_api

EVENTS = "/api/v1/namespaces/default/events"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


class Clock:
    """The emulator's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api() -> AsyncIterator[tuple[SandboxAPI, str, aiohttp.ClientSession, Clock]]:
    clock = Clock()
    async with serve_api(event_ttl=60.0, request_log_size=50) as (api, url):
        api.clock = clock
        async with aiohttp.ClientSession() as session:
            yield api, url, session, clock


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    async with session.request(method, url, json=body, **kw) as response:
        return response.status, await response.json()


def _event(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started",
        "message": "started",
        "type": "Normal",
    }


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


async def test_an_event_expires_its_ttl_after_its_last_write_and_watchers_see_it_go(
    api: tuple[SandboxAPI, str, aiohttp.ClientSession, Clock],
) -> None:
    emulator, url, session, clock = api
    assert (await _call(session, "POST", url + EVENTS, _event("old")))[0] == 201
    status, created = await _call(session, "POST", url + EVENTS, _event("renewed"))
    assert status == 201
    since = created["metadata"]["resourceVersion"]

    clock.now += 40
    status, _ = await _call(session, "PATCH", f"{url}{EVENTS}/renewed", {"count": 2}, headers=MERGE)
    assert status == 200  # a write renews the Event's TTL, as an etcd lease is renewed

    clock.now += 30  # 70 s after both were created, 30 s after "renewed" was written
    assert (await _call(session, "GET", f"{url}{EVENTS}/old"))[0] == 404
    status, renewed = await _call(session, "GET", f"{url}{EVENTS}/renewed")
    assert status == 200 and renewed["count"] == 2
    listed = (await _call(session, "GET", url + EVENTS))[1]["items"]
    assert [e["metadata"]["name"] for e in listed] == ["renewed"]

    clock.now += 31
    assert (await _call(session, "GET", f"{url}{EVENTS}/renewed"))[0] == 404
    assert emulator.retention()["events_expiring"] == 0

    # A watch from before sees both go, as from the API server.
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    async with session.get(url + EVENTS, params=params) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines() if line]
    gone = [(e["type"], e["object"]["metadata"]["name"]) for e in lines if e["type"] == "DELETED"]
    assert gone == [("DELETED", "old"), ("DELETED", "renewed")]


async def test_removed_objects_are_forgotten_and_a_name_can_be_used_again(
    api: tuple[SandboxAPI, str, aiohttp.ClientSession, Clock],
) -> None:
    emulator, url, session, _ = api
    before = emulator.retention()
    uids = set()
    for _ in range(20):
        status, pod = await _call(session, "POST", url + PODS, _pod("again"))
        assert status == 201
        uids.add(pod["metadata"]["uid"])
        await _call(session, "PATCH", f"{url}{PODS}/again/status", {"status": {"phase": "Running"}},
                    headers=MERGE)  # fmt: skip
        assert (await _call(session, "DELETE", f"{url}{PODS}/again"))[0] == 200
    held = emulator.retention()
    assert len(uids) == 20  # each a new object
    assert held["objects_removed_kept"] == 0
    assert held["objects"] == before["objects"]
    assert held["object_versions"] == before["object_versions"]
    assert (await _call(session, "GET", f"{url}{PODS}/again"))[0] == 404


async def test_the_watch_history_keeps_recent_events_and_the_request_log_its_size(
    api: tuple[SandboxAPI, str, aiohttp.ClientSession, Clock],
) -> None:
    emulator, url, session, clock = api
    status, first = await _call(session, "POST", url + PODS, _pod("p-0"))
    assert status == 201
    for i in range(1, 150):
        assert (await _call(session, "POST", url + PODS, _pod(f"p-{i}")))[0] == 201
    # Within 75 s everything is kept: a watch resumes from the first pod.
    since = first["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    async with session.get(url + PODS, params=params) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines() if line]
    assert len(lines) == 149 and all(e["type"] == "ADDED" for e in lines)

    clock.now += 80
    assert (await _call(session, "POST", url + PODS, _pod("p-150")))[0] == 201
    # Older than 75 s, beyond the 100 kept: gone; resuming from there is 410, as on a cluster.
    assert 100 <= emulator.retention()["watch_history"] <= 110
    async with session.get(url + PODS, params=params) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines() if line]
    assert lines[0]["type"] == "ERROR" and lines[0]["object"]["code"] == 410

    assert emulator.retention()["request_log"] == 50
    assert len(emulator.request_log.records(verb="create", resource="pods")) < 50
