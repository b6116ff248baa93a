"""Server-side apply's merge and field ownership, over the kinds' OpenAPI schemas."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_sandbox import openapi, server_side_apply

DEPLOYMENT = openapi.Served(
    "apps", "v1", "deployments", "Deployment", True, frozenset({"status", "scale"}), None
)
NOW = "2026-01-01T00:00:00Z"


def deployment(*containers: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": list(containers)}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": spec,
    }


def test_keyed_lists_are_owned_item_by_item_in_the_api_servers_format() -> None:
    applied = server_side_apply.apply(
        DEPLOYMENT,
        None,
        deployment({"name": "main", "image": "a"}, replicas=2),
        manager="flux",
        force=False,
        now=NOW,
    )
    [entry] = applied["metadata"]["managedFields"]
    assert entry["fieldsV1"] == {
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"main"}': {".": {}, "f:image": {}, "f:name": {}}}
                }
            },
        }
    }
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "flux",
        "Apply",
        "apps/v1",
    )


def test_a_changed_field_of_another_manager_conflicts_unless_forced() -> None:
    live = server_side_apply.apply(
        DEPLOYMENT,
        None,
        deployment({"name": "main", "image": "a"}, replicas=2),
        manager="flux",
        force=False,
        now=NOW,
    )
    same = deployment({"name": "main", "image": "a"})
    shared = server_side_apply.apply(DEPLOYMENT, live, same, manager="ci", force=False, now=NOW)
    assert {e["manager"] for e in shared["metadata"]["managedFields"]} == {"flux", "ci"}

    bump = deployment({"name": "main", "image": "b"}, replicas=3)
    with pytest.raises(server_side_apply.ApplyConflict) as caught:
        server_side_apply.apply(DEPLOYMENT, live, bump, manager="ci", force=False, now=NOW)
    assert [c.field for c in caught.value.conflicts] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="main"].image',
    ]
    assert str(caught.value) == (
        'Apply failed with 2 conflicts: conflicts with "flux":\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="main"].image'
    )
    forced = server_side_apply.apply(DEPLOYMENT, live, bump, manager="ci", force=True, now=NOW)
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert "f:replicas" not in owners["flux"]["f:spec"]
    assert forced["spec"]["replicas"] == 3


def test_fields_dropped_from_a_config_go_unless_another_manager_owns_them() -> None:
    both = deployment({"name": "main", "image": "a"}, {"name": "sidecar", "image": "s"})
    live = server_side_apply.apply(DEPLOYMENT, None, both, manager="flux", force=False, now=NOW)
    live = server_side_apply.apply(
        DEPLOYMENT,
        live,
        deployment({"name": "main", "image": "a"}, replicas=1),
        manager="scaler",
        force=False,
        now=NOW,
    )
    only_sidecar = deployment({"name": "sidecar", "image": "s"})
    after = server_side_apply.apply(
        DEPLOYMENT, live, only_sidecar, manager="flux", force=False, now=NOW
    )
    names = [c["name"] for c in after["spec"]["template"]["spec"]["containers"]]
    assert names == ["main", "sidecar"]  # the scaler co-owns main
    gone = server_side_apply.apply(
        DEPLOYMENT, after, deployment(), manager="flux", force=False, now=NOW
    )
    assert [c["name"] for c in gone["spec"]["template"]["spec"]["containers"]] == ["main"]


def test_a_plain_write_takes_the_fields_it_changes_from_their_owners() -> None:
    live = server_side_apply.apply(
        DEPLOYMENT,
        None,
        deployment({"name": "main", "image": "a"}, replicas=2),
        manager="flux",
        force=False,
        now=NOW,
    )
    scaled = {**live, "spec": {**live["spec"], "replicas": 5}}
    entries = server_side_apply.record_update(
        DEPLOYMENT, live, scaled, manager="kubectl-patch", now=NOW
    )
    owners = {(e["manager"], e["operation"]): e["fieldsV1"] for e in entries}
    assert owners["kubectl-patch", "Update"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners["flux", "Apply"]["f:spec"]
    unchanged = server_side_apply.record_update(
        DEPLOYMENT, live, live, manager="kubectl-patch", now="2026-02-02T00:00:00Z"
    )
    assert unchanged == live["metadata"]["managedFields"]  # no write, no new owner


def test_field_paths_round_trip_through_fields_v1() -> None:
    paths = {("f:data", "f:a"), ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', ".")}
    assert server_side_apply.from_fields_v1(server_side_apply.to_fields_v1(paths)) == paths


def test_unknown_fields_are_named_by_their_path() -> None:
    obj = deployment({"name": "main", "image": "a", "imagePolicy": "x"})
    obj["spec"]["replica"] = 2
    assert openapi.unknown_fields(DEPLOYMENT, obj) == [
        "spec.template.spec.containers[0].imagePolicy",
        "spec.replica",
    ]


def test_the_same_config_applied_a_second_later_leaves_the_object_as_it_was() -> None:
    config = deployment({"name": "main", "image": "a"}, replicas=2)
    first = server_side_apply.apply(DEPLOYMENT, None, config, manager="flux", force=False, now=NOW)
    again = server_side_apply.apply(
        DEPLOYMENT, first, config, manager="flux", force=False, now="2026-01-01T00:00:01Z"
    )
    assert again == first  # no change, so the API server writes nothing (same resourceVersion)
    changed = server_side_apply.apply(
        DEPLOYMENT,
        first,
        deployment({"name": "main", "image": "b"}, replicas=2),
        manager="flux",
        force=False,
        now="2026-01-01T00:00:02Z",
    )
    assert [e["time"] for e in changed["metadata"]["managedFields"]] == ["2026-01-01T00:00:02Z"]
