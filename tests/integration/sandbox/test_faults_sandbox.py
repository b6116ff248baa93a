"""Fault injection in the sandbox: API rules over real HTTP, the request log, the admin
endpoint, and the S3 server's slowdowns, latency and refused connections."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import botocore.config
import botocore.exceptions
import pytest

from mlops_sandbox import cli
from mlops_sandbox.apiserver import SandboxAPI, serve_api
from mlops_sandbox.faults import Fault, FaultError, S3Fault
from mlops_sandbox.s3 import S3Server, client_from_env, credentials_env

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
OPERATOR = {"User-Agent": "mlops-operator/1.0 (pid 1)"}


@pytest.fixture
async def served() -> AsyncIterator[tuple[SandboxAPI, aiohttp.ClientSession]]:
    async with serve_api() as (api, url), aiohttp.ClientSession(url) as session:
        yield api, session


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def create(session: aiohttp.ClientSession, name: str, **headers: str) -> int:
    async with session.post(CONFIGMAPS, json=configmap(name), headers=headers) as response:
        return response.status


async def test_a_429_with_retry_after_answers_only_the_matching_client_and_is_logged(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    api.faults.add(
        Fault(
            status=429,
            verb="create",
            resource="configmaps",
            client="mlops-operator",
            times=2,
            retry_after=3,
        )
    )
    async with session.post(CONFIGMAPS, json=configmap("a"), headers=OPERATOR) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        body = await response.json()
        assert body["reason"] == "TooManyRequests" and body["kind"] == "Status"
    assert await create(session, "b", **{"User-Agent": "kubectl/v1.33"}) == 201
    assert await create(session, "c", **OPERATOR) == 429
    assert await create(session, "d", **OPERATOR) == 201  # two answers, then served

    creates = api.request_log.records(verb="create", resource="configmaps")
    assert [(r.client, r.status) for r in creates] == [
        ("mlops-operator", 429),
        ("kubectl", 201),
        ("mlops-operator", 429),
        ("mlops-operator", 201),
    ]
    assert [r.fault is not None for r in creates] == [True, False, True, False]
    assert api.request_log.count(client="mlops-operator", verb="create") == 3


async def test_a_fault_after_the_third_create_lasts_its_window(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    fault = api.faults.add(
        Fault(
            status=503,
            times=None,
            seconds=0.5,
            after=3,
            after_verb="create",
            after_resource="configmaps",
        )
    )
    assert [await create(session, f"n{i}") for i in range(3)] == [201, 201, 201]
    async with session.get(CONFIGMAPS + "/n0") as response:
        assert response.status == 503  # everything, once the trigger fired
    await asyncio.sleep(0.6)  # the window is what is tested: it must have closed
    async with session.get(CONFIGMAPS + "/n0") as response:
        assert response.status == 200
    assert fault.hits == 1 and fault.triggered == 3


async def test_a_seeded_probability_answers_the_same_requests_every_run(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    runs = []
    for run in range(2):
        api.faults.clear()
        api.faults.add(Fault(status=409, verb="create", times=None, probability=0.3, seed=7))
        runs.append([await create(session, f"r{run}-{i}") for i in range(20)])
    assert runs[0] == runs[1]
    assert 2 <= runs[0].count(409) <= 10 and set(runs[0]) == {201, 409}


async def test_an_expired_resource_version_is_410_on_list_and_watch(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    api.faults.add(Fault(action="expire", resource="configmaps", times=None))
    async with session.get(CONFIGMAPS) as response:
        assert response.status == 200  # no resourceVersion asked for: served
        rv = (await response.json())["metadata"]["resourceVersion"]
    async with session.get(CONFIGMAPS, params={"resourceVersion": rv}) as response:
        assert response.status == 410
        assert (await response.json())["reason"] == "Expired"
    params = {"watch": "true", "resourceVersion": rv}
    async with session.get(CONFIGMAPS, params=params) as response:
        assert response.status == 200
        events = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


async def test_a_dropped_watch_ends_and_a_stalled_one_sends_nothing(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    api.faults.add(Fault(action="drop", resource="configmaps", hold=0.3))
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.get(CONFIGMAPS, params={"watch": "true"}) as response:
            await response.read()
    assert time.monotonic() - started < 5
    api.faults.add(Fault(action="stall", resource="configmaps", hold=0.5))
    await create(session, "while-stalled")
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.get(CONFIGMAPS, params={"watch": "true"}) as response:
            assert response.status == 200
            assert await response.content.read(1) == b""  # no event, then the cut


async def test_a_timeout_outlasts_the_client_and_close_cuts_the_connection(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    api.faults.add(Fault(action="timeout", verb="get", hold=2.0))
    with pytest.raises(TimeoutError):
        async with session.get(
            CONFIGMAPS + "/x", timeout=aiohttp.ClientTimeout(total=0.5)
        ) as response:
            await response.read()
    # A create: aiohttp retries an idempotent request once on a reused connection.
    api.faults.add(Fault(action="close", verb="create"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(session, "cut")
    assert await create(session, "cut") == 201
    assert [r.status for r in api.request_log.records(verb=("get", "create"))] == [
        None,
        None,
        201,
    ]


async def test_a_lost_answer_is_a_cut_connection_after_the_write_landed(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    api.faults.add(Fault(action="lost", verb="create", resource="configmaps"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(session, "landed")
    assert await create(session, "landed") == 409  # the first create was served
    async with session.get(CONFIGMAPS + "/landed") as response:
        assert response.status == 200


def test_rules_that_cannot_work_are_refused() -> None:
    with pytest.raises(FaultError, match="unknown action"):
        Fault(action="explode")
    with pytest.raises(FaultError, match="probability"):
        Fault(probability=1.5)
    with pytest.raises(FaultError, match="needs a window"):
        S3Fault(action="refuse")


async def test_the_admin_endpoint_adds_lists_and_clears_faults_and_serves_the_log(
    served: tuple[SandboxAPI, aiohttp.ClientSession],
) -> None:
    api, session = served
    rule = {"status": 503, "resource": "configmaps", "seconds": 10, "times": None}
    async with session.post("/sandbox/faults", json=rule) as response:
        assert response.status == 201
        added = await response.json()
    assert added["id"] >= 1 and added["status"] == 503 and added["live"] is True
    assert await create(session, "x") == 503
    async with session.get("/sandbox/faults") as response:
        listing = await response.json()
    assert [(f["id"], f["hits"]) for f in listing["api"]] == [(added["id"], 1)]
    for bad, message in [
        ({"status": "soon"}, "status must be a int"),
        ({"colour": "red"}, "unknown fault field"),
        ({"target": "moon"}, "target is"),
        ({"action": "explode"}, "unknown action"),
    ]:
        async with session.post("/sandbox/faults", json=bad) as response:
            assert response.status == 400
            assert message in (await response.json())["message"]
    async with session.delete("/sandbox/faults") as response:
        assert (await response.json())["api"] == []
    assert await create(session, "x") == 201
    async with session.get("/sandbox/requests", params={"verb": "create"}) as response:
        statuses = [r["status"] for r in (await response.json())["requests"]]
    assert statuses == [503, 201]
    assert len(api.faults) == 0


def s3_client(endpoint: str) -> Any:
    return client_from_env(
        credentials_env(endpoint),
        botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=5
        ),
    )


def test_s3_slows_down_answers_late_and_refuses_connections_for_a_window() -> None:
    server = S3Server(buckets=("faulty",))
    server.start()
    client = s3_client(server.endpoint)
    try:
        slow = server.faults.add(S3Fault(action="slowdown", times=1))
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.list_objects_v2(Bucket="faulty")
        assert info.value.response["Error"]["Code"] == "SlowDown"
        assert slow.hits == 1
        client.list_objects_v2(Bucket="faulty")  # counted out: served

        server.faults.add(S3Fault(action="latency", latency=0.4, times=1))
        started = time.monotonic()
        client.list_objects_v2(Bucket="faulty")
        assert time.monotonic() - started >= 0.4

        endpoint = server.endpoint
        server.faults.add(S3Fault(action="refuse", seconds=1.0))
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client.list_objects_v2(Bucket="faulty")
        assert server.endpoint == endpoint
        deadline = time.monotonic() + 10
        while True:  # polls a real port opening again; the refusal above is what is tested
            try:
                client.list_objects_v2(Bucket="faulty")
                break
            except botocore.exceptions.EndpointConnectionError:
                assert time.monotonic() < deadline, "S3 did not come back after its window"
                time.sleep(0.1)
    finally:
        client.close()
        server.stop()


async def test_the_fault_command_adds_lists_and_clears_rules_of_a_running_sandbox(
    served: tuple[SandboxAPI, aiohttp.ClientSession], capsys: pytest.CaptureFixture[str]
) -> None:
    api, session = served
    url = str(session._base_url)

    def run(*argv: str) -> tuple[int, str, str]:
        args = cli.build_parser().parse_args(["fault", "--api-url", url, *argv])
        code = args.func(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = await asyncio.to_thread(
        run, "add", "--status", "503", "--resource", "configmaps", "--for", "10s"
    )
    assert code == 0 and out.startswith("added fault 1: status=503 resource=configmaps")
    assert await create(session, "x") == 503
    code, out, _ = await asyncio.to_thread(run, "list")
    assert code == 0 and "  1 api    yes       1  status=503" in out
    code, _, err = await asyncio.to_thread(run, "add", "--action", "explode")
    assert code == 1 and "HTTP 400: unknown action 'explode'" in err
    code, out, _ = await asyncio.to_thread(run, "clear")
    assert code == 0 and len(api.faults) == 0
    code, out, _ = await asyncio.to_thread(run, "requests", "--verb", "create")
    assert code == 0 and out.count(" create configmaps default 503 (fault 1)") == 1
