"""The sandbox Kubernetes API emulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import kopf
import kubernetes.client
import pytest
import yaml

from mlops_sandbox.apiserver import SandboxAPI, serve_api
from tests.support import eventually

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.mlops.dev
spec:
  group: test.mlops.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wg]
    categories: [mlops]
  versions:
    - name: v1alpha1
      served: true
      storage: false
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    - name: v1beta1
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [model, dataset]
              properties:
                model:
                  type: string
                  x-kubernetes-validations:
                    - rule: self == oldSelf
                      message: model is immutable
                dataset:
                  type: object
                  required: [uri]
                  properties:
                    uri: {type: string, minLength: 1}
                    format: {type: string, enum: [csv, parquet], default: csv}
                replicas: {type: integer, minimum: 0, default: 1}
                port: {x-kubernetes-int-or-string: true}
                note: {type: string, nullable: true}
                params:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
            status:
              type: object
              properties:
                phase: {type: string, enum: [Pending, Ready]}
                observedGeneration: {type: integer}
"""
WIDGETS = "/apis/test.mlops.dev/v1beta1/namespaces/default/widgets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


@pytest.fixture
async def sandbox_api(tmp_path: pathlib.Path) -> AsyncIterator[tuple[SandboxAPI, str]]:
    (tmp_path / "widgets.yaml").write_text(WIDGET_CRD)
    async with serve_api(crd_dir=tmp_path) as (api, url):
        yield api, url


@pytest.fixture
def api(sandbox_api: tuple[SandboxAPI, str]) -> SandboxAPI:
    return sandbox_api[0]


@pytest.fixture
async def http(sandbox_api: tuple[SandboxAPI, str]) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(sandbox_api[1]) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    status: int = 200,
) -> Any:
    """Send one request, check the status code, return the decoded JSON answer."""
    data = None if body is None else json.dumps(body)
    async with http.request(method, path, data=data, headers=headers) as response:
        text = await response.text()
        assert response.status == status, text
        return json.loads(text) if text else None


def widget_ref(owner: dict[str, Any]) -> dict[str, Any]:
    """An owner reference to a created Widget."""
    return {
        "apiVersion": "test.mlops.dev/v1beta1",
        "kind": "Widget",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


def widget(name: str = "w1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.mlops.dev/v1beta1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"model": "iris", "dataset": {"uri": "s3://data/iris.csv"}, **spec},
    }


async def watch_events(
    http: aiohttp.ClientSession, path: str, *, timeout: float = 0.5, **params: str
) -> list[dict[str, Any]]:
    """Read a watch stream until the server ends it after ``timeout`` seconds."""
    query = {"watch": "true", "timeoutSeconds": str(timeout), **params}
    async with http.get(path, params=query) as response:
        assert response.status == 200
        return [json.loads(line) async for line in response.content if line.strip()]


async def test_create_sets_metadata_and_answers_201(http: aiohttp.ClientSession) -> None:
    first = await call(http, "POST", WIDGETS, widget(), status=201)
    meta = first["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["namespace"] == "default"

    body = widget()
    body["metadata"] = {"generateName": "w-"}
    second = await call(http, "POST", WIDGETS, body, status=201)
    assert re.fullmatch(r"w-[a-z0-9]{5}", second["metadata"]["name"])
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    fetched = await call(http, "GET", f"{WIDGETS}/{second['metadata']['name']}")
    assert fetched == second


async def test_create_of_an_existing_name_is_already_exists(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(), status=201)
    error = await call(http, "POST", WIDGETS, widget(), status=409)
    assert error["reason"] == "AlreadyExists"
    assert error["message"] == 'widgets.test.mlops.dev "w1" already exists'


async def test_create_into_a_missing_namespace_is_not_found(http: aiohttp.ClientSession) -> None:
    path = "/apis/test.mlops.dev/v1beta1/namespaces/team-a/widgets"
    error = await call(http, "POST", path, widget(), status=404)
    assert error["message"] == 'namespaces "team-a" not found'

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    await call(http, "POST", "/api/v1/namespaces", namespace, status=201)
    await call(http, "POST", path, widget(), status=201)
    names = [
        ns["metadata"]["name"] for ns in (await call(http, "GET", "/api/v1/namespaces"))["items"]
    ]
    assert "team-a" in names
    assert (await call(http, "GET", "/api/v1/namespaces/team-a"))["status"]["phase"] == "Active"


async def test_stale_resource_version_is_a_conflict(http: aiohttp.ClientSession) -> None:
    created = await call(http, "POST", WIDGETS, widget("x"), status=201)
    stale = created["metadata"]["resourceVersion"]
    await call(http, "PATCH", f"{WIDGETS}/x", {"spec": {"replicas": 2}}, headers=MERGE)
    expected = (
        'Operation cannot be fulfilled on widgets.test.mlops.dev "x": the object has been'
        " modified; please apply your changes to the latest version and try again"
    )

    patch = {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 3}}
    error = await call(http, "PATCH", f"{WIDGETS}/x", patch, headers=MERGE, status=409)
    assert (error["reason"], error["message"]) == ("Conflict", expected)
    error = await call(http, "PUT", f"{WIDGETS}/x", created, status=409)
    assert (error["reason"], error["message"]) == ("Conflict", expected)

    current = await call(http, "GET", f"{WIDGETS}/x")
    current["spec"]["replicas"] = 4
    replaced = await call(http, "PUT", f"{WIDGETS}/x", current)
    assert replaced["spec"]["replicas"] == 4


async def test_a_merge_patch_with_a_stale_resource_version_is_a_conflict_on_status_too(
    http: aiohttp.ClientSession,
) -> None:
    created = await call(http, "POST", WIDGETS, widget("x"), status=201)
    stale = created["metadata"]["resourceVersion"]
    await call(
        http, "PATCH", f"{WIDGETS}/x/status", {"status": {"phase": "Pending"}}, headers=MERGE
    )

    patch = {"metadata": {"resourceVersion": stale}, "status": {"phase": "Ready"}}
    error = await call(http, "PATCH", f"{WIDGETS}/x/status", patch, headers=MERGE, status=409)
    assert error["reason"] == "Conflict"
    assert (await call(http, "GET", f"{WIDGETS}/x"))["status"] == {"phase": "Pending"}

    jobs = "/apis/batch/v1/namespaces/default/jobs"
    job = await call(http, "POST", jobs, {"metadata": {"name": "j"}, "spec": {}}, status=201)
    await call(http, "PATCH", f"{jobs}/j", {"metadata": {"labels": {"a": "1"}}}, headers=MERGE)
    for path, body in (
        (f"{jobs}/j", {"metadata": {"labels": {"a": "2"}}}),
        (f"{jobs}/j/status", {"status": {"succeeded": 1}}),
    ):
        stale_patch = {
            **body,
            "metadata": {
                **body.get("metadata", {}),
                "resourceVersion": job["metadata"]["resourceVersion"],
            },
        }
        error = await call(http, "PATCH", path, stale_patch, headers=MERGE, status=409)
        assert error["message"] == (
            'Operation cannot be fulfilled on jobs.batch "j": the object has been modified;'
            " please apply your changes to the latest version and try again"
        )
    current = await call(http, "GET", f"{jobs}/j")
    assert (current["metadata"]["labels"], current["status"]) == ({"a": "1"}, {})
    fresh = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}}
    patched = await call(
        http, "PATCH", f"{jobs}/j/status", {**fresh, "status": {"succeeded": 1}}, headers=MERGE
    )
    assert patched["status"] == {"succeeded": 1}


async def test_lists_carry_the_current_resource_version(http: aiohttp.ClientSession) -> None:
    created = await call(http, "POST", WIDGETS, widget(), status=201)
    listing = await call(http, "GET", WIDGETS)
    assert listing["kind"] == "WidgetList"
    assert listing["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    await call(
        http,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "c"}},
        status=201,
    )
    later = await call(http, "GET", "/apis/test.mlops.dev/v1beta1/widgets")
    assert int(later["metadata"]["resourceVersion"]) > int(listing["metadata"]["resourceVersion"])
    assert [item["metadata"]["name"] for item in later["items"]] == ["w1"]


async def test_generation_follows_spec_changes_and_no_op_writes_change_nothing(
    http: aiohttp.ClientSession,
) -> None:
    created = await call(http, "POST", WIDGETS, widget(), status=201)
    rv = created["metadata"]["resourceVersion"]

    labelled = await call(
        http, "PATCH", f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}}, headers=MERGE
    )
    assert labelled["metadata"]["generation"] == 1
    status = await call(
        http, "PATCH", f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}, headers=MERGE
    )
    assert status["metadata"]["generation"] == 1
    changed = await call(http, "PATCH", f"{WIDGETS}/w1", {"spec": {"replicas": 3}}, headers=MERGE)
    assert changed["metadata"]["generation"] == 2

    last_rv = changed["metadata"]["resourceVersion"]
    same = await call(http, "PATCH", f"{WIDGETS}/w1", {"spec": {"replicas": 3}}, headers=MERGE)
    assert same["metadata"]["resourceVersion"] == last_rv
    assert await watch_events(http, WIDGETS, resourceVersion=last_rv, timeout=0.2) == []
    events = await watch_events(http, WIDGETS, resourceVersion=rv, timeout=0.2)
    assert [e["type"] for e in events] == ["MODIFIED"] * 3


async def test_merge_patch_deletes_on_null_and_replaces_lists(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(params={"layers": [1, 2, 3], "drop": 0.1}), status=201)
    patch = {"spec": {"params": {"layers": [4], "drop": None}}}
    patched = await call(http, "PATCH", f"{WIDGETS}/w1", patch, headers=MERGE)
    assert patched["spec"]["params"] == {"layers": [4]}


async def test_json_patch_applies_operations(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(params={"layers": [1, 2]}), status=201)
    ops = [
        {"op": "add", "path": "/spec/params/layers/-", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
    ]
    patched = await call(http, "PATCH", f"{WIDGETS}/w1", ops, headers=JSON_PATCH)
    assert patched["spec"]["params"]["layers"] == [1, 2, 3]
    assert patched["spec"]["replicas"] == 5
    assert patched["metadata"]["annotations"] == {"k": "v"}
    failing = [{"op": "test", "path": "/spec/replicas", "value": 1}]
    await call(http, "PATCH", f"{WIDGETS}/w1", failing, headers=JSON_PATCH, status=422)


async def test_strategic_merge_patch_merges_containers_by_name(http: aiohttp.ClientSession) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    containers = [
        {"name": "server", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "s:1"},
    ]
    deployment = {
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    created = await call(http, "POST", path, deployment, status=201)
    assert created["spec"]["replicas"] == 1  # the API server's default
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "server", "image": "a:2", "env": [{"name": "B", "value": "2"}]},
                        {"name": "sidecar", "$patch": "delete"},
                    ],
                    "$setElementOrder/containers": [{"name": "server"}],
                }
            }
        }
    }
    patched = await call(http, "PATCH", f"{path}/d", patch, headers=STRATEGIC)
    assert patched["spec"]["template"]["spec"] == {
        "containers": [
            {
                "name": "server",
                "image": "a:2",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            }
        ]
    }


async def test_server_side_apply_needs_a_field_manager(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(), status=201)
    headers = {"Content-Type": "application/apply-patch+yaml"}
    async with http.patch(f"{WIDGETS}/w1", data="spec: {}", headers=headers) as response:
        assert response.status == 400
        error = await response.json()
    assert error["reason"] == "BadRequest"
    assert error["message"] == (
        "PATCH, application/apply-patch+yaml requests must have a fieldManager"
    )


async def test_status_subresource_separates_status_from_the_rest(
    http: aiohttp.ClientSession,
) -> None:
    body = widget()
    body["status"] = {"phase": "Ready"}
    created = await call(http, "POST", WIDGETS, body, status=201)
    assert "status" not in created

    patch = {"spec": {"replicas": 2}, "status": {"phase": "Ready"}}
    main = await call(http, "PATCH", f"{WIDGETS}/w1", patch, headers=MERGE)
    assert main["spec"]["replicas"] == 2
    assert "status" not in main

    patch = {"spec": {"replicas": 7}, "status": {"phase": "Ready", "observedGeneration": 2}}
    status = await call(http, "PATCH", f"{WIDGETS}/w1/status", patch, headers=MERGE)
    assert status["status"] == {"phase": "Ready", "observedGeneration": 2}
    assert status["spec"]["replicas"] == 2

    jobs = "/apis/batch/v1/namespaces/default/jobs"
    await call(http, "POST", jobs, {"metadata": {"name": "j"}, "spec": {}}, status=201)
    job = await call(
        http, "PUT", f"{jobs}/j/status", {"metadata": {"name": "j"}, "status": {"succeeded": 1}}
    )
    assert job["status"] == {"succeeded": 1}
    job["status"] = {"failed": 1}
    replaced = await call(http, "PUT", f"{jobs}/j", job)
    assert replaced["status"] == {"succeeded": 1}


async def test_an_object_created_for_a_deleted_owner_is_collected(
    http: aiohttp.ClientSession,
) -> None:
    owner = await call(http, "POST", WIDGETS, widget(), status=201)
    ref = widget_ref(owner)
    await call(http, "DELETE", f"{WIDGETS}/w1")
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    # A controller that read the owner just before it went creates a child anyway.
    await call(
        http, "POST", jobs, {"metadata": {"name": "late", "ownerReferences": [ref]}}, status=201
    )
    await call(http, "GET", f"{jobs}/late", status=404)


async def test_an_object_created_for_a_replaced_owner_is_collected(
    http: aiohttp.ClientSession,
) -> None:
    first = await call(http, "POST", WIDGETS, widget(), status=201)
    await call(http, "DELETE", f"{WIDGETS}/w1")
    await call(http, "POST", WIDGETS, widget(), status=201)  # same name, a new uid
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    stale = {"metadata": {"name": "stale", "ownerReferences": [widget_ref(first)]}}
    await call(http, "POST", jobs, stale, status=201)
    await call(http, "GET", f"{jobs}/stale", status=404)


async def test_owner_references_are_garbage_collected(http: aiohttp.ClientSession) -> None:
    owner = await call(http, "POST", WIDGETS, widget(), status=201)
    ref = widget_ref(owner)
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    job = await call(
        http, "POST", jobs, {"metadata": {"name": "j", "ownerReferences": [ref]}}, status=201
    )
    job_ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": job["metadata"]["uid"]}
    pods = "/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "p", "ownerReferences": [job_ref], "finalizers": ["x/y"]}}
    await call(http, "POST", pods, pod, status=201)
    await call(
        http,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "free"}},
        status=201,
    )

    await call(http, "DELETE", f"{WIDGETS}/w1")
    await call(http, "GET", f"{WIDGETS}/w1", status=404)
    await call(http, "GET", f"{jobs}/j", status=404)
    terminating = await call(http, "GET", f"{pods}/p")  # held by its finalizer
    assert terminating["metadata"]["deletionTimestamp"]
    await call(http, "GET", "/api/v1/namespaces/default/configmaps/free")

    await call(http, "PATCH", f"{pods}/p", {"metadata": {"finalizers": None}}, headers=MERGE)
    await call(http, "GET", f"{pods}/p", status=404)


async def test_deleting_a_namespace_deletes_its_objects(http: aiohttp.ClientSession) -> None:
    namespace = {"metadata": {"name": "team-b"}}
    await call(http, "POST", "/api/v1/namespaces", namespace, status=201)
    path = "/apis/test.mlops.dev/v1beta1/namespaces/team-b/widgets"
    await call(http, "POST", path, widget(), status=201)
    await call(http, "POST", WIDGETS, widget(), status=201)

    await call(http, "DELETE", "/api/v1/namespaces/team-b")
    await call(http, "GET", "/api/v1/namespaces/team-b", status=404)
    remaining = await call(http, "GET", "/apis/test.mlops.dev/v1beta1/widgets")
    assert [item["metadata"]["namespace"] for item in remaining["items"]] == ["default"]


async def test_replace_keeps_server_fields_and_needs_the_object(
    http: aiohttp.ClientSession,
) -> None:
    created = await call(http, "POST", WIDGETS, widget(), status=201)
    body = widget(replicas=3)  # no uid, no resourceVersion: an unconditional replace
    replaced = await call(http, "PUT", f"{WIDGETS}/w1", body)
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert replaced["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert replaced["metadata"]["generation"] == 2
    await call(http, "PUT", f"{WIDGETS}/other", widget("other"), status=404)
    await call(http, "PUT", f"{WIDGETS}/w1", widget("renamed"), status=400)


async def test_finalizers_hold_deletion_until_removed(http: aiohttp.ClientSession) -> None:
    body = widget()
    body["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    created = await call(http, "POST", WIDGETS, body, status=201)
    deleted = await call(http, "DELETE", f"{WIDGETS}/w1")
    assert deleted["metadata"]["deletionTimestamp"]
    assert (await call(http, "GET", f"{WIDGETS}/w1"))["metadata"]["finalizers"]

    patch: dict[str, Any] = {"metadata": {"finalizers": []}}
    await call(http, "PATCH", f"{WIDGETS}/w1", patch, headers=MERGE)
    await call(http, "GET", f"{WIDGETS}/w1", status=404)
    events = await watch_events(
        http, WIDGETS, resourceVersion=created["metadata"]["resourceVersion"]
    )
    assert [event["type"] for event in events] == ["MODIFIED", "MODIFIED", "DELETED"]


async def test_custom_resources_are_defaulted_pruned_and_validated(
    http: aiohttp.ClientSession,
) -> None:
    body = widget(port="http", note=None, unknown=1, params={"free": {"form": True}})
    body["spec"]["dataset"]["junk"] = "x"
    body["junk"] = {"top": "level"}
    created = await call(http, "POST", WIDGETS, body, status=201)
    assert created["spec"] == {
        "model": "iris",
        "dataset": {"uri": "s3://data/iris.csv", "format": "csv"},
        "replicas": 1,
        "port": "http",
        "note": None,
        "params": {"free": {"form": True}},
    }
    assert "junk" not in created

    bad = widget("bad", replicas=-1, port=1.5)
    bad["spec"]["dataset"] = {"format": "json"}
    error = await call(http, "POST", WIDGETS, bad, status=422)
    assert error["reason"] == "Invalid"
    assert error["message"].startswith('Widget.test.mlops.dev "bad" is invalid: [')
    assert error["details"]["name"] == "bad"
    assert error["details"]["group"] == "test.mlops.dev"
    assert error["details"]["kind"] == "Widget"
    causes = {cause["field"]: cause for cause in error["details"]["causes"]}
    assert causes["spec.dataset.uri"]["reason"] == "FieldValueRequired"
    assert causes["spec.dataset.uri"]["message"] == "Required value"
    assert causes["spec.dataset.format"]["reason"] == "FieldValueNotSupported"
    assert causes["spec.dataset.format"]["message"] == (
        'Unsupported value: "json": supported values: "csv", "parquet"'
    )
    assert causes["spec.replicas"]["reason"] == "FieldValueInvalid"
    assert "should be greater than or equal to 0" in causes["spec.replicas"]["message"]
    assert "spec.port" in causes

    single = widget("bad")
    del single["spec"]["dataset"]["uri"]
    error = await call(http, "POST", WIDGETS, single, status=422)
    assert (
        error["message"]
        == 'Widget.test.mlops.dev "bad" is invalid: spec.dataset.uri: Required value'
    )

    patch = {"spec": {"dataset": {"uri": None}}}
    await call(http, "PATCH", f"{WIDGETS}/w1", patch, headers=MERGE, status=422)


async def test_transition_rule_keeps_a_field_immutable(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(), status=201)
    patch = {"spec": {"model": "digits"}}
    error = await call(http, "PATCH", f"{WIDGETS}/w1", patch, headers=MERGE, status=422)
    assert error["message"] == (
        'Widget.test.mlops.dev "w1" is invalid:'
        ' spec.model: Invalid value: "string": model is immutable'
    )
    await call(http, "PATCH", f"{WIDGETS}/w1", {"spec": {"replicas": 2}}, headers=MERGE)


async def test_status_writes_are_validated(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(), status=201)
    patch: dict[str, Any] = {"status": {"phase": "Exploded"}}
    error = await call(http, "PATCH", f"{WIDGETS}/w1/status", patch, headers=MERGE, status=422)
    assert error["details"]["causes"][0]["field"] == "status.phase"
    patch = {"status": {"phase": "Ready", "kopf": {"progress": {}}}}
    written = await call(http, "PATCH", f"{WIDGETS}/w1/status", patch, headers=MERGE)
    assert written["status"] == {"phase": "Ready"}  # unknown status fields are pruned


async def test_watch_resumes_from_a_resource_version(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget("a"), status=201)
    mark = (await call(http, "GET", WIDGETS))["metadata"]["resourceVersion"]
    await call(http, "POST", WIDGETS, widget("b"), status=201)
    await call(http, "PATCH", f"{WIDGETS}/a", {"spec": {"replicas": 2}}, headers=MERGE)
    await call(http, "DELETE", f"{WIDGETS}/b")

    events = await watch_events(http, WIDGETS, resourceVersion=mark)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(mark)

    replay = await watch_events(http, WIDGETS, resourceVersion="0")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in replay] == [("ADDED", "a")]


async def test_watch_streams_live_events_until_its_timeout(http: aiohttp.ClientSession) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        await call(http, "POST", WIDGETS, widget("live"), status=201)

    writer = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await watch_events(http, WIDGETS, timeout=1)
    await writer
    assert 0.9 < loop.time() - started < 3
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "live")]


async def test_watch_from_a_compacted_resource_version_is_gone(
    api: SandboxAPI, http: aiohttp.ClientSession
) -> None:
    api.event_log_size = 2
    first = await call(http, "POST", WIDGETS, widget("a"), status=201)
    for replicas in (2, 3, 4):
        await call(http, "PATCH", f"{WIDGETS}/a", {"spec": {"replicas": replicas}}, headers=MERGE)
    events = await watch_events(http, WIDGETS, resourceVersion=first["metadata"]["resourceVersion"])
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_label_and_field_selectors_filter_lists_and_watches(
    http: aiohttp.ClientSession,
) -> None:
    start = (await call(http, "GET", WIDGETS))["metadata"]["resourceVersion"]
    labelled: dict[str, dict[str, str]] = {
        "a": {"tier": "gold", "team": "x"},
        "b": {"tier": "silver"},
        "c": {},
    }
    for name, labels in labelled.items():
        body = widget(name)
        body["metadata"]["labels"] = labels
        await call(http, "POST", WIDGETS, body, status=201)

    async def names(**params: str) -> list[str]:
        async with http.get(WIDGETS, params=params) as response:
            assert response.status == 200
            return [item["metadata"]["name"] for item in (await response.json())["items"]]

    assert await names(labelSelector="tier=gold") == ["a"]
    assert await names(labelSelector="tier!=gold") == ["b", "c"]
    assert await names(labelSelector="tier") == ["a", "b"]
    assert await names(labelSelector="!tier") == ["c"]
    assert await names(labelSelector="tier in (gold, silver),team notin (y)") == ["a", "b"]
    assert await names(fieldSelector="metadata.name=b") == ["b"]
    assert await names(fieldSelector="metadata.namespace=default,metadata.name!=b") == ["a", "c"]

    # Leaving the selection is a DELETED event for the watcher, as on a real API server.
    await call(
        http, "PATCH", f"{WIDGETS}/a", {"metadata": {"labels": {"tier": "bronze"}}}, headers=MERGE
    )
    events = await watch_events(http, WIDGETS, resourceVersion=start, labelSelector="tier=gold")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]
    events = await watch_events(
        http, WIDGETS, resourceVersion=start, fieldSelector="metadata.name=c"
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["c"]


async def test_discovery_lists_custom_and_builtin_resources(http: aiohttp.ClientSession) -> None:
    groups = {g["name"]: g for g in (await call(http, "GET", "/apis"))["groups"]}
    assert groups["test.mlops.dev"]["preferredVersion"]["version"] == "v1beta1"
    assert {"apps", "batch", "events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"} <= set(
        groups
    )

    custom = await call(http, "GET", "/apis/test.mlops.dev/v1beta1")
    resources = {r["name"]: r for r in custom["resources"]}
    assert set(resources) == {"widgets", "widgets/status"}
    widgets = resources["widgets"]
    assert (widgets["kind"], widgets["singularName"], widgets["namespaced"]) == (
        "Widget",
        "widget",
        True,
    )
    assert widgets["shortNames"] == ["wg"]
    assert widgets["categories"] == ["mlops"]
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(widgets["verbs"])

    core = await call(http, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    names = {r["name"]: r for r in core["resources"]}
    assert {"pods", "pods/status", "pods/log", "secrets", "configmaps", "services"} <= set(names)
    assert names["namespaces"]["namespaced"] is False
    apps = {r["name"] for r in (await call(http, "GET", "/apis/apps/v1"))["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= apps

    crds = await call(http, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    [crd] = crds["items"]
    assert crd["metadata"]["name"] == "widgets.test.mlops.dev"
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"


async def test_every_served_version_reads_the_same_objects(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", WIDGETS, widget(), status=201)
    old_path = "/apis/test.mlops.dev/v1alpha1/namespaces/default/widgets/w1"
    old = await call(http, "GET", old_path)
    assert old["apiVersion"] == "test.mlops.dev/v1alpha1"
    assert old["spec"]["model"] == "iris"


async def test_crds_created_over_the_api_are_served(http: aiohttp.ClientSession) -> None:
    crd = yaml.safe_load(WIDGET_CRD)
    crd["metadata"]["name"] = "gadgets.test.mlops.dev"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    crd["spec"]["scope"] = "Cluster"
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    await call(http, "POST", crds, crd, status=201)
    gadgets = "/apis/test.mlops.dev/v1beta1/gadgets"
    body = widget("g") | {"kind": "Gadget"}
    created = await call(http, "POST", gadgets, body, status=201)
    assert "namespace" not in created["metadata"]

    await call(http, "DELETE", f"{crds}/gadgets.test.mlops.dev")
    await call(http, "GET", gadgets, status=404)


async def test_deployment_scale_subresource(http: aiohttp.ClientSession) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    await call(http, "POST", path, {"metadata": {"name": "d"}, "spec": {"replicas": 2}}, status=201)
    scale = await call(http, "GET", f"{path}/d/scale")
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 2)
    scaled = await call(http, "PATCH", f"{path}/d/scale", {"spec": {"replicas": 5}}, headers=MERGE)
    assert scaled["spec"]["replicas"] == 5
    assert (await call(http, "GET", f"{path}/d"))["spec"]["replicas"] == 5


async def test_pod_logs_come_from_the_log_provider(
    api: SandboxAPI, http: aiohttp.ClientSession
) -> None:
    pods = "/api/v1/namespaces/default/pods"
    created = await call(http, "POST", pods, {"metadata": {"name": "p"}, "spec": {}}, status=201)
    assert created["status"] == {"phase": "Pending"}
    await call(http, "GET", f"{pods}/p/log", status=404)

    api.log_provider = lambda namespace, name: f"{namespace}/{name}: one\ntwo\nthree\n"
    async with http.get(f"{pods}/p/log") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == "default/p: one\ntwo\nthree\n"
    async with http.get(f"{pods}/p/log", params={"tailLines": "1"}) as response:
        assert await response.text() == "three\n"
    await call(http, "GET", f"{pods}/missing/log", status=404)


async def test_events_can_be_posted_in_both_apis(http: aiohttp.ClientSession) -> None:
    core = {
        "metadata": {"generateName": "w1-"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Created",
        "message": "done",
        "type": "Normal",
    }
    await call(http, "POST", "/api/v1/namespaces/default/events", core, status=201)
    modern = {
        "metadata": {"generateName": "w1-"},
        "regarding": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Created",
        "note": "done",
        "type": "Normal",
        "action": "Create",
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "test",
        "reportingInstance": "test-1",
    }
    await call(http, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", modern, status=201)
    assert len((await call(http, "GET", "/api/v1/events"))["items"]) == 1


async def test_kubernetes_client_gets_created_objects_and_api_errors(
    sandbox_api: tuple[SandboxAPI, str],
) -> None:
    def use_client() -> None:
        configuration = kubernetes.client.Configuration(host=sandbox_api[1])
        with kubernetes.client.ApiClient(configuration) as client:
            custom = kubernetes.client.CustomObjectsApi(client)
            created: Any = custom.create_namespaced_custom_object(
                "test.mlops.dev", "v1beta1", "default", "widgets", widget()
            )
            assert created["metadata"]["uid"]
            patched: Any = custom.patch_namespaced_custom_object_status(
                "test.mlops.dev",
                "v1beta1",
                "default",
                "widgets",
                "w1",
                {"status": {"phase": "Ready"}},
            )
            assert patched["status"] == {"phase": "Ready"}

            core = kubernetes.client.CoreV1Api(client)
            config_map = kubernetes.client.V1ConfigMap(
                metadata=kubernetes.client.V1ObjectMeta(name="c"), data={"a": "1"}
            )
            cm = core.create_namespaced_config_map("default", config_map)
            assert cm.metadata is not None
            assert cm.metadata.uid and cm.metadata.resource_version
            # The client sends dict patches of built-ins as strategic merge patches.
            core.patch_namespaced_config_map("c", "default", {"data": {"b": "2"}})
            assert core.read_namespaced_config_map("c", "default").data == {"a": "1", "b": "2"}
            with pytest.raises(kubernetes.client.ApiException) as info:
                core.create_namespaced_config_map("default", config_map)
            assert info.value.status == 409

    await asyncio.to_thread(use_client)


async def test_kopf_operator_handles_custom_objects(
    sandbox_api: tuple[SandboxAPI, str], http: aiohttp.ClientSession
) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
        settings.watching.server_timeout = 1

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=sandbox_api[1], default_namespace="default")

    @kopf.on.create("test.mlops.dev", "widgets", registry=registry)
    def created(spec: kopf.Spec, patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
        kopf.info(body, reason="Handled", message="the widget is handled")
        patch.status["phase"] = "Ready"
        patch.metadata.setdefault("labels", {})["handled"] = spec["model"]

    # kopf gets its own thread and loop, as the operator gets its own process: on exit,
    # kopf waits for and then cancels every task its loop started after it, which in a
    # shared loop are the emulator's connection handlers.
    stop = threading.Event()
    operator = threading.Thread(
        target=asyncio.run,
        args=(kopf.operator(registry=registry, standalone=True, clusterwide=True, stop_flag=stop),),
    )
    operator.start()
    try:
        await call(http, "POST", WIDGETS, widget(), status=201)

        async def handled() -> dict[str, Any] | None:
            obj: dict[str, Any] = await call(http, "GET", f"{WIDGETS}/w1")
            return obj if "status" in obj and "labels" in obj["metadata"] else None

        current = await eventually(handled, timeout=5.0)
        assert current["status"] == {"phase": "Ready"}
        assert current["metadata"]["labels"] == {"handled": "iris"}
        annotations = current["metadata"]["annotations"]
        assert any(key.startswith("kopf.zalando.org/") for key in annotations)
        events = "/api/v1/namespaces/default/events"

        async def posted() -> bool:
            return bool((await call(http, "GET", events))["items"])

        await eventually(posted, timeout=5.0)
        [event] = (await call(http, "GET", events))["items"]
        assert (event["reason"], event["involvedObject"]["name"]) == ("Handled", "w1")
    finally:
        stop.set()
        await asyncio.to_thread(operator.join, 10)
    assert not operator.is_alive()


async def test_kmock_reactions_still_take_precedence(
    api: SandboxAPI, http: aiohttp.ClientSession
) -> None:
    api["patch", kmock.resource("test.mlops.dev", "v1beta1", "widgets")] << 503
    await call(http, "POST", WIDGETS, widget(), status=201)
    await call(http, "PATCH", f"{WIDGETS}/w1", {"spec": {}}, headers=MERGE, status=503)
    assert (await call(http, "GET", f"{WIDGETS}/w1"))["metadata"]["generation"] == 1


async def test_dry_run_writes_nothing(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", f"{WIDGETS}?dryRun=All", widget(), status=201)
    await call(http, "GET", f"{WIDGETS}/w1", status=404)


async def test_discovery_names_no_short_names_or_categories_for_subresources(
    http: aiohttp.ClientSession,
) -> None:
    resources = (await call(http, "GET", "/api/v1"))["resources"]
    subresources = [r for r in resources if "/" in r["name"]]
    assert subresources
    for entry in subresources:
        assert not entry.get("shortNames") and not entry.get("categories"), entry


async def test_requests_are_counted_by_client_verb_and_resource(
    sandbox_api: tuple[SandboxAPI, str], http: aiohttp.ClientSession
) -> None:
    api = sandbox_api[0]
    agent = {"User-Agent": "mlops-bench/1 extra"}
    await call(http, "POST", WIDGETS, widget(), headers=agent, status=201)
    await call(http, "GET", WIDGETS, headers=agent)
    await call(http, "GET", f"{WIDGETS}/w1", headers=agent)
    await call(
        http,
        "PATCH",
        f"{WIDGETS}/w1/status",
        {"status": {"phase": "Ready"}},
        headers={**agent, "Content-Type": "application/merge-patch+json"},
    )
    await call(http, "GET", f"{WIDGETS}/missing", headers=agent, status=404)

    mine = {key: n for key, n in api.request_counts.items() if key[0] == "mlops-bench"}
    assert mine == {
        ("mlops-bench", "create", "widgets"): 1,
        ("mlops-bench", "list", "widgets"): 1,
        ("mlops-bench", "get", "widgets"): 2,
        ("mlops-bench", "patch", "widgets/status"): 1,
    }
    assert set(api.request_seconds) >= set(mine)
