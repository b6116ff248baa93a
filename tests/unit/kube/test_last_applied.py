"""Patches of owned children against what the operator last applied: every field it sets,
null for what it set before and dropped, nothing about fields others set; the record kept
on the child within the annotation limit, and as its shape in the watch state."""

from __future__ import annotations

import json
from typing import Any

from mlops_operator.kube.apply import (
    RECORD_LIMIT,
    applied,
    merge_patch,
    read_record,
    record_text,
    shape,
    slim_record,
)
from mlops_operator.kube.names import LAST_APPLIED, SPEC_HASH
from mlops_operator.watches import deployments_by_name


def deployment(pod: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "svc-predictor",
            "namespace": "ns",
            "labels": {"app": "svc"},
            "annotations": {SPEC_HASH: "abc"},
            "ownerReferences": [{"name": "svc"}],
        },
        "spec": {
            **spec,
            "template": {"metadata": {"labels": {"app": "svc"}}, "spec": pod},
        },
    }


def test_a_dropped_field_is_nulled_and_fields_never_set_are_left_out() -> None:
    before = applied(deployment({"nodeSelector": {"pool": "gpu"}, "containers": []}, replicas=2))
    after = applied(deployment({"containers": [{"name": "main"}]}, replicas=2))

    patch = merge_patch(before, after)

    pod = patch["spec"]["template"]["spec"]
    assert pod == {"nodeSelector": None, "containers": [{"name": "main"}]}
    assert patch["spec"]["replicas"] == 2
    # Only keys we own appear: nothing about status, defaults or other controllers' fields.
    assert set(patch) == {"metadata", "spec"}
    assert patch["metadata"] == {"labels": {"app": "svc"}, "annotations": {SPEC_HASH: "abc"}}


def test_keys_dropped_inside_a_map_are_nulled_one_by_one() -> None:
    before = {"spec": {"nodeSelector": {"pool": "gpu", "zone": "a"}}}
    after = {"spec": {"nodeSelector": {"zone": "b"}}}

    assert merge_patch(before, after) == {"spec": {"nodeSelector": {"pool": None, "zone": "b"}}}


def test_lists_are_sent_whole_so_a_removed_item_goes() -> None:
    ports = [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]
    before = {"spec": {"ports": ports}}
    after = {"spec": {"ports": ports[:1]}}

    assert merge_patch(before, after) == {"spec": {"ports": ports[:1]}}


def test_removing_the_service_account_removes_its_deprecated_mirror_too() -> None:
    before = {"spec": {"serviceAccountName": "irsa", "containers": []}}
    after = {"spec": {"containers": []}}

    patch = merge_patch(before, after)

    assert patch == {"spec": {"serviceAccountName": None, "serviceAccount": None, "containers": []}}


def test_without_a_record_the_patch_only_sets() -> None:
    after = {"spec": {"replicas": 1}}

    assert merge_patch(None, after) == after


def test_the_record_is_compact_json_of_what_we_own_without_itself() -> None:
    desired = deployment({"containers": []}, replicas=1)
    desired["metadata"]["annotations"][LAST_APPLIED] = "stale"
    desired["status"] = {"replicas": 1}

    text = record_text(desired)

    assert " " not in text
    record = json.loads(text)
    assert set(record) == {"metadata", "spec"}
    assert record["metadata"]["annotations"] == {SPEC_HASH: "abc"}
    assert "ownerReferences" not in record["metadata"]
    assert read_record({"metadata": {"annotations": {LAST_APPLIED: text}}}) == record


def test_a_record_too_large_for_the_annotation_limit_keeps_its_keys() -> None:
    env = [{"name": f"V{i}", "value": "x" * 1000} for i in range(200)]
    desired = deployment({"containers": [{"name": "main", "env": env}], "nodeSelector": {"a": "b"}})

    text = record_text(desired)

    assert len(text.encode()) < RECORD_LIMIT
    record = json.loads(text)
    assert record["spec"]["template"]["spec"] == {"containers": True, "nodeSelector": {"a": True}}
    # The shape is enough to remove what goes away.
    after = applied(deployment({"containers": []}))
    assert merge_patch(record, after)["spec"]["template"]["spec"]["nodeSelector"] is None


def test_a_record_edited_into_something_else_is_no_record() -> None:
    for text in ("not json", "[1, 2]", None):
        assert read_record({"metadata": {"annotations": {LAST_APPLIED: text}}}) is None
    assert read_record({"metadata": {}}) is None


async def test_the_watch_state_keeps_the_record_as_its_shape() -> None:
    desired = deployment({"containers": [{"name": "main", "image": "x" * 500}]})
    desired["metadata"]["annotations"][LAST_APPLIED] = record_text(desired)

    entries = await deployments_by_name(namespace="ns", name="svc-predictor", body=desired)

    (slim,) = entries.values()
    kept = slim["metadata"]["annotations"][LAST_APPLIED]
    assert json.loads(kept) == shape(json.loads(desired["metadata"]["annotations"][LAST_APPLIED]))
    assert len(kept) < 200
    assert slim["metadata"]["annotations"][SPEC_HASH] == "abc"
    assert slim_record("not json") == "not json"
